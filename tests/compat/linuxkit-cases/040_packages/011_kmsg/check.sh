#!/bin/sh
set -e
logread -F | grep -q kmsg && echo "kmsg: logged"; poweroff -f
