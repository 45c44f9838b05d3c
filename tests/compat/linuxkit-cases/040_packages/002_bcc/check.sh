#!/bin/sh
set -e
python3 -c "import bcc" && echo "bcc: imported"
