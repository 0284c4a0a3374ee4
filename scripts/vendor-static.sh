#!/usr/bin/env bash
# Re-vendor the browser libraries into static/vendor/ from the npm registry.
# The files are committed; run this only to upgrade them (then commit the result).
set -euo pipefail
cd "$(dirname "$0")/.."
HTMX=2.0.11 HTMX_WS=2.0.4 PICO=2.1.1 UPLOT=1.6.32
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "htmx.org@$HTMX" "htmx-ext-ws@$HTMX_WS" "@picocss/pico@$PICO" "uplot@$UPLOT" >/dev/null)
for t in "$work"/*.tgz; do mkdir -p "${t%.tgz}" && tar xzf "$t" -C "${t%.tgz}"; done
dest=static/vendor
mkdir -p "$dest"
cp "$work/htmx.org-$HTMX/package/dist/htmx.min.js" "$dest/htmx.min.js"
cp "$work/htmx.org-$HTMX/package/LICENSE" "$dest/htmx.LICENSE"
cp "$work/htmx-ext-ws-$HTMX_WS/package/dist/ws.min.js" "$dest/htmx-ext-ws.min.js"
cp "$work/picocss-pico-$PICO/package/css/pico.min.css" "$dest/pico.min.css"
cp "$work/picocss-pico-$PICO/package/LICENSE.md" "$dest/pico.LICENSE.md"
# uPlot (MIT): the scaling page's metric, replica and replay charts
cp "$work/uplot-$UPLOT/package/dist/uPlot.iife.min.js" "$dest/uPlot.iife.min.js"
cp "$work/uplot-$UPLOT/package/dist/uPlot.min.css" "$dest/uPlot.min.css"
cp "$work/uplot-$UPLOT/package/LICENSE" "$dest/uPlot.LICENSE"
cat > "$dest/VERSIONS" <<EOV
htmx.org $HTMX
htmx-ext-ws $HTMX_WS
@picocss/pico $PICO
uplot $UPLOT
EOV
(cd "$dest" && sha256sum htmx.min.js htmx-ext-ws.min.js pico.min.css uPlot.iife.min.js uPlot.min.css > SHA256SUMS)
echo "vendored into $dest"
