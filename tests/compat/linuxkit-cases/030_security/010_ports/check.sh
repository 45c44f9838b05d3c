#!/bin/sh
set -e
# nothing may listen on a TCP or UDP port
test "$(netstat -lntu | grep -c LISTEN)" -eq 0 && echo "ports: closed"
