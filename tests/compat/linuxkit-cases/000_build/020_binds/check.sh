#!/bin/sh
set -e
echo checked
