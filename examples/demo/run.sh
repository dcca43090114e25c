#!/usr/bin/env sh
# The polyrec demo end to end: ingest 36 books, add 40 reading events, fit, then ask.
# Starts from an empty store each time (examples/demo/polyrec-data, git-ignored).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
polyrec=${POLYREC:-polyrec}
config="$here/polyrec.toml"
export HF_HUB_OFFLINE=1

step() { printf '\n== %s\n' "$*"; }

rm -rf "$here/polyrec-data"
step "ingest the catalog (MiniLM reads title + description + genre + tags)"
$polyrec ingest "$here/items.jsonl" --config "$config"
step "ingest it again: nothing changed, nothing is encoded"
$polyrec ingest "$here/items.jsonl" --config "$config"
step "add reading events"
$polyrec events "$here/events.csv" --config "$config"
step "fit: behavior vectors from who read what, then re-fuse"
$polyrec fit --config "$config"
step "recommend for ada (reads science fiction), with explanations"
$polyrec recommend --user ada -k 5 --explain --show title genre --config "$config"
step "recommend for cleo (cooking and gardening), published 2015 or later, diversified"
$polyrec recommend --user cleo -k 5 --diversity 0.5 --filter '{"year": {"$gte": 2015}}' --show title genre year \
  --config "$config"
step "a reader we know nothing about gets popular books"
$polyrec recommend --user newcomer -k 3 --show title --config "$config"
step "books like 'The Bread Year'"
$polyrec similar --item b14 -k 4 --show title genre --config "$config"
step "search: books about growing tomatoes"
$polyrec search "growing tomatoes at home" -k 3 --show title genre --config "$config"
step "search 'detective story', personalised for fay"
$polyrec search "detective story" --user fay -k 3 --show title genre --config "$config"
