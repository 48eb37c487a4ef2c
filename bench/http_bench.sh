#!/usr/bin/env bash
# HTTPS throughput and p99 latency of test-status and test-request against nginx serving a
# static JSON file over HTTPS with the same TLS profile, on the same machine in the same run.
# Rounds alternate nginx / mts so drift of a shared machine hits both alike.
#
#   bench/http_bench.sh [SECONDS_PER_RUN=10] [CONNECTIONS=64] [ROUNDS=2]
#
# Needs wrk and nginx-light (installed here if missing). Traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
connections=${2:-64}
rounds=${3:-2}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx-light)
if ((${#need[@]})); then
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
[ -x build/bin/mts ] || ./scripts/setup.sh
mts=$PWD/build/bin/mts

work=$(mktemp -d /tmp/mts-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
nginx_port=$(free_port)
mts_port=$(free_port)

# --- nginx: static JSON of the size of a test-status answer, Mozilla intermediate TLS ---
mkdir -p "$work/nginx/www" "$work/nginx/logs"
chmod 755 "$work" "$work/nginx" "$work/nginx/www" # nginx workers run unprivileged when started as root
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "$work/nginx/key.pem" -out "$work/nginx/cert.pem" -subj /CN=localhost \
  -addext subjectAltName=IP:127.0.0.1 2>/dev/null
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_timeout 65;
  keepalive_requests 100000;
  default_type application/json;
  client_body_temp_path $work/nginx/tmp;
  server {
    listen 127.0.0.1:$nginx_port ssl;
    ssl_certificate $work/nginx/cert.pem;
    ssl_certificate_key $work/nginx/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305;
    ssl_prefer_server_ciphers off;
    ssl_session_tickets off;
    root $work/nginx/www;
  }
}
CONF

# --- mts: a token, one stored test to read back ---
data="$work/mts"
common=(--storage.path="$data/mts.db" --http.port="$mts_port" --rate_limit.requests=1000000
        --rate_limit.window_seconds=1 --log.level=warn --edge.enabled=false)
token=$("$mts" token create --name bench --days 1 "${common[@]}")
"$mts" serve "${common[@]}" 2>"$work/mts.log" &
pids+=($!)
for _ in $(seq 100); do
  curl -skf "https://127.0.0.1:$mts_port/MTS/service-status" >/dev/null 2>&1 && break
  sleep 0.1
done
body='{"requestReference":"BENCH","meterType":"ELSTERA1700","remoteAddress":"07777000000","outstationAddress":"1","serialNumber":"12345678","password":"AAAA0000","surveyDays":10,"surveyDate":"2019-12-01"}'
curl -skf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d "$body" \
  "https://127.0.0.1:$mts_port/MTS/test-request" >/dev/null
curl -skf -H "Authorization: Bearer $token" "https://127.0.0.1:$mts_port/MTS/test-status?testId=1" \
  > "$work/nginx/www/status.json"
chmod 644 "$work/nginx/www/status.json"
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -g 'daemon off;' 2>"$work/nginx/logs/stderr" &
pids+=($!)
for _ in $(seq 50); do
  curl -skf "https://127.0.0.1:$nginx_port/status.json" >/dev/null 2>&1 && break
  sleep 0.1
done

cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
LUA

# Prints "req/s p99_ms" for one wrk run.
run_wrk() {
  local out
  out=$(timeout $((duration + 30)) wrk -t2 -c"$connections" -d"${duration}s" --latency "$@")
  local rps p99 errors
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; print v}' <<<"$out")
  errors=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
  if [ -n "$errors" ]; then echo "bench: $errors non-2xx responses in: $*" >&2; fi
  echo "$rps $p99"
}

printf '%-6s %-15s %12s %10s %8s\n' round target "req/s" "p99 ms" ratio
for round in $(seq "$rounds"); do
  read -r n_rps n_p99 < <(run_wrk "https://127.0.0.1:$nginx_port/status.json")
  printf '%-6s %-15s %12.0f %10.2f %8s\n' "$round" nginx-static "$n_rps" "$n_p99" 1.00
  # The HTTP library's floor: an unknown URL answered with a 404 and no further work.
  read -r f_rps f_p99 < <(run_wrk "https://127.0.0.1:$mts_port/MTS/unknown-url" 2>/dev/null)
  printf '%-6s %-15s %12.0f %10.2f %8.2f\n' "$round" unknown-url-404 "$f_rps" "$f_p99" "$(awk -v a="$f_rps" -v b="$n_rps" 'BEGIN{print a/b}')"
  read -r s_rps s_p99 < <(run_wrk -H "Authorization: Bearer $token" "https://127.0.0.1:$mts_port/MTS/test-status?testId=1")
  printf '%-6s %-15s %12.0f %10.2f %8.2f\n' "$round" test-status "$s_rps" "$s_p99" "$(awk -v a="$s_rps" -v b="$n_rps" 'BEGIN{print a/b}')"
  read -r r_rps r_p99 < <(run_wrk -s "$work/post.lua" "https://127.0.0.1:$mts_port/MTS/test-request")
  printf '%-6s %-15s %12.0f %10.2f %8.2f\n' "$round" test-request "$r_rps" "$r_p99" "$(awk -v a="$r_rps" -v b="$n_rps" 'BEGIN{print a/b}')"
done
echo "mts threads at the end: $(ls /proc/${pids[0]}/task | wc -l); peak RSS: $(awk '/VmHWM/ {print $2, $3}' /proc/${pids[0]}/status)"
