#!/bin/sh
set -e
if [ "$1" = shutdown ]; then test -f /tmp/ok && echo "wireguard: reached"; exit 0; fi
wget -q -O /dev/null http://10.77.0.1/ && touch /tmp/ok
kill -TERM 1
