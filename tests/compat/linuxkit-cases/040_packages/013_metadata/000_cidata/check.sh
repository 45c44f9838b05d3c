#!/bin/sh
set -e
test -f /run/config/userdata && echo "metadata: read from cidata"
