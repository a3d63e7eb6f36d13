# Sourced by test/docs.test.ts before the docs' shell blocks: the curl they run, pointed at the
# test server (DOCS_HOSTPORT), failing on a status >= 400 unless DOCS_EXPECT names the one expected.
# What a failure prints: the command with any API key's secret cut off.
docs_redacted() { printf '%s' "$*" | sed -E 's/(sk_[0-9A-Za-z]{20})\.[0-9A-Za-z]+/\1.[REDACTED]/g; s/(Bearer )[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/\1[REDACTED]/g'; }

curl() {
  local args=() a custom=0
  for a in "$@"; do
    a="${a//localhost:8080/$DOCS_HOSTPORT}"
    a="${a//127.0.0.1:8080/$DOCS_HOSTPORT}"
    case "$a" in -o|--output|-w|--write-out|-I|--head) custom=1 ;; esac
    args+=("$a")
  done
  if [ "$custom" = 1 ]; then command curl "${args[@]}"; return; fi
  local body status
  body=$(mktemp)
  status=$(command curl "${args[@]}" -o "$body" -w '%{http_code}') || { rm -f "$body"; echo "docs-test: curl failed: $(docs_redacted "$@")" >&2; return 1; }
  cat "$body"; rm -f "$body"
  if [ -n "${DOCS_EXPECT:-}" ]; then
    [ "$status" = "$DOCS_EXPECT" ] || { echo "docs-test: expected HTTP $DOCS_EXPECT, got $status: $(docs_redacted "$@")" >&2; return 1; }
  elif [ "$status" -ge 400 ]; then
    echo "docs-test: HTTP $status: $(docs_redacted "$@")" >&2; return 1
  fi
}

# The examples run `npm run paygate` as a reader does from the repository; the blocks themselves run
# in a scratch directory (they write files), so npm is pointed at the repository.
npm() { command npm --prefix "$DOCS_REPO" "$@"; }
