#!/usr/bin/env bash
# Regenerates docs/rolemesh.1 from the command definitions, with swift-argument-parser's
# generate-manual plugin (which builds the package in release mode first). Run it after adding
# or changing a command, flag or help text; DocsConsistencyTests fails until you do.
set -euo pipefail
cd "$(dirname "$0")/.."
swift package generate-manual --authors "the RoleMesh project"
cp .build/plugins/GenerateManual/outputs/rolemesh/rolemesh.1 docs/rolemesh.1
echo "wrote docs/rolemesh.1 (read it with: man ./docs/rolemesh.1)"
