#!/bin/sh
# Make python3.11 available on the image's base: present already on python:3.11 images; on the
# Ubuntu-based CUDA runtime images it comes from the deadsnakes PPA. No compilers are installed.
set -eu
if command -v python3.11 >/dev/null 2>&1; then
  exit 0
fi
apt-get update
apt-get install -y --no-install-recommends software-properties-common gpg-agent ca-certificates
add-apt-repository -y ppa:deadsnakes/ppa
apt-get update
apt-get install -y --no-install-recommends python3.11 python3.11-venv
apt-get purge -y software-properties-common gpg-agent
apt-get autoremove -y
rm -rf /var/lib/apt/lists/*
