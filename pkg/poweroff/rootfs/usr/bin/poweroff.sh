#!/bin/sh
# poweroff [SECONDS]: wait (default 30 s), then power the machine off. For tests.
sleep "${1:-30}"
exec poweroff -f
