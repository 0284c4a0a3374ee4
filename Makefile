# The verbs a newcomer looks for. Each delegates to a script that also works without make.
.PHONY: run test lint fmt typecheck check migrations-check bench image vendor-static chart-lint

VENV ?= .venv

run:            ## set up and run ICC on the embedded default (http://127.0.0.1:8000)
	./scripts/run.sh

test:           ## install what the tests need, then lint, type-check and run the suite on PostgreSQL + Redis
	./scripts/test.sh

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff format --check .

fmt:
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

typecheck:
	$(VENV)/bin/mypy .

check:
	$(VENV)/bin/python manage.py check

migrations-check:
	$(VENV)/bin/python manage.py makemigrations --check --dry-run

bench:          ## measure API throughput and latency (bench/README.md)
	$(VENV)/bin/python bench/api.py

image:          ## build the container image (needs podman or buildah)
	podman build -t icc:dev .

vendor-static:  ## re-vendor htmx, its websocket extension and Pico CSS from npm
	./scripts/vendor-static.sh

chart-lint:     ## lint, render, schema-check and dry-run the Helm chart (deploy/helm/icc; no helm binary needed)
	$(VENV)/bin/python scripts/helm_values_table.py --check
	$(VENV)/bin/python -m pytest tests/deploy/test_helm.py -q
