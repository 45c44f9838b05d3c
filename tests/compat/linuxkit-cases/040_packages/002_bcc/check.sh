#!/bin/sh
set -e
test -d /usr/share/bcc/tools && echo "bcc: tools present"
