#!/bin/sh
# Regenerates the decryption test captures: OpenSSL s_server/s_client on
# loopback, captured with tcpdump, secrets from -keylogfile. Run as root:
#   sh gen.sh            (or ONLY=NAME sh gen.sh)
# Each case: NAME.pcap and NAME.keylog (client-side key log).
set -eu
cd "$(dirname "$0")"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
  -subj /CN=wiretax.test -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
PSK=73656e736f722d7365637265742d3031

# case NAME PORT "server options" "client options" "client input"
case_() {
  name=$1 port=$2 sopts=$3 copts=$4 input=$5
  # ONLY=name regenerates one case.
  if [ -n "${ONLY:-}" ] && [ "$ONLY" != "$name" ]; then return 0; fi
  rm -f "$name.keylog"
  tcpdump -i lo -U -s 0 -w "$name.pcap" "port $port" 2>/dev/null &
  dump=$!
  sleep 0.5
  openssl s_server -accept "127.0.0.1:$port" -cert "$WORK/cert.pem" -key "$WORK/key.pem" -rev -naccept 1 $sopts >/dev/null 2>&1 &
  srv=$!
  sleep 0.5
  printf "$input" | while IFS= read -r line; do printf '%s\n' "$line"; sleep 0.2; done \
    | openssl s_client -connect "127.0.0.1:$port" -keylogfile "$name.keylog" $copts >/dev/null 2>&1 || true
  sleep 0.5
  kill $srv 2>/dev/null || true
  kill $dump
  wait $dump 2>/dev/null || true
}
IN='reading 1\nreading 2\nQ\n'
case_ tls12-chacha20 44301 "" "-tls1_2 -cipher ECDHE-ECDSA-CHACHA20-POLY1305" "$IN"
case_ tls12-aes128-ccm 44302 "-cipher ALL" "-tls1_2 -cipher ECDHE-ECDSA-AES128-CCM" "$IN"
case_ tls12-aes256-ccm8 44303 "-cipher ALL:@SECLEVEL=0" "-tls1_2 -cipher ECDHE-ECDSA-AES256-CCM8:@SECLEVEL=0" "$IN"
case_ tls12-aes128-cbc-sha-mte 44304 "-no_etm" "-tls1_2 -no_etm -cipher ECDHE-ECDSA-AES128-SHA" "$IN"
case_ tls12-aes256-cbc-sha384-etm 44305 "" "-tls1_2 -cipher ECDHE-ECDSA-AES256-SHA384" "$IN"
case_ tls12-aes128-cbc-sha256-mte 44306 "-no_etm" "-tls1_2 -no_etm -cipher ECDHE-ECDSA-AES128-SHA256" "$IN"
case_ tls13-chacha20 44307 "" "-tls1_3 -ciphersuites TLS_CHACHA20_POLY1305_SHA256" "$IN"
case_ tls13-aes128-ccm 44308 "-ciphersuites TLS_AES_128_CCM_SHA256" "-tls1_3 -ciphersuites TLS_AES_128_CCM_SHA256" "$IN"
case_ tls13-aes128-ccm8 44309 "-ciphersuites TLS_AES_128_CCM_8_SHA256 -cipher ALL:@SECLEVEL=0" "-tls1_3 -ciphersuites TLS_AES_128_CCM_8_SHA256 -cipher ALL:@SECLEVEL=0" "$IN"
# KeyUpdate: "k" updates the client's keys; "K" also asks the server to update.
case_ tls13-keyupdate 44310 "" "-tls1_3 -ciphersuites TLS_AES_256_GCM_SHA384" 'reading 1\nk\nreading 2\nK\nreading 3\nQ\n'
# A suite wiretax does not decrypt (ARIA-GCM): keyless accounting, a clear message.
case_ tls12-aria128-gcm 44314 "-cipher ALL" "-tls1_2 -cipher ECDHE-ECDSA-ARIA128-GCM-SHA256" "$IN"
# HelloRetryRequest: the client's first key share is for a group the server refuses.
case_ tls13-hello-retry 44311 "-groups P-256" "-tls1_3 -groups X25519:P-256" "$IN"

# DTLS 1.2 over UDP: the server answers with one line of its own.
dtls_case() {
  name=$1 port=$2 cipher=$3
  if [ -n "${ONLY:-}" ] && [ "$ONLY" != "$name" ]; then return 0; fi
  rm -f "$name.keylog"
  tcpdump -i lo -U -s 0 -w "$name.pcap" "udp port $port" 2>/dev/null &
  dump=$!
  sleep 0.5
  (sleep 1.5; printf 'ack 1\n'; sleep 1.5) | openssl s_server -dtls1_2 -accept "127.0.0.1:$port" -cert "$WORK/cert.pem" -key "$WORK/key.pem" -naccept 1 -cipher "$cipher" >/dev/null 2>&1 &
  srv=$!
  sleep 0.5
  (sleep 0.8; printf 'reading 1\n'; sleep 0.5; printf 'reading 2\n'; sleep 1.5; printf 'Q\n') \
    | openssl s_client -dtls1_2 -connect "127.0.0.1:$port" -keylogfile "$name.keylog" -cipher "$cipher" >/dev/null 2>&1 || true
  sleep 0.5
  kill $srv 2>/dev/null || true
  kill $dump
  wait $dump 2>/dev/null || true
}
dtls_case dtls12-aes128-gcm 44312 ECDHE-ECDSA-AES128-GCM-SHA256
dtls_case dtls12-aes256-cbc-sha 44313 ECDHE-ECDSA-AES256-SHA

# TLS 1.2 session-ticket resumption: two connections in one capture, the
# second resumes the first's ticket (ServerHello with an empty session id
# is possible; no Certificate follows).
resume_case() {
  name=$1 port=$2
  if [ -n "${ONLY:-}" ] && [ "$ONLY" != "$name" ]; then return 0; fi
  rm -f "$name.keylog"
  tcpdump -i lo -U -s 0 -w "$name.pcap" "port $port" 2>/dev/null &
  dump=$!
  sleep 0.5
  openssl s_server -accept "127.0.0.1:$port" -cert "$WORK/cert.pem" -key "$WORK/key.pem" -rev -naccept 2 >/dev/null 2>&1 &
  srv=$!
  sleep 0.5
  for opt in "-sess_out $WORK/sess.pem" "-sess_in $WORK/sess.pem"; do
    printf 'reading 1\nQ\n' | while IFS= read -r line; do printf '%s\n' "$line"; sleep 0.2; done \
      | openssl s_client -connect "127.0.0.1:$port" -tls1_2 -keylogfile "$name.keylog" $opt >/dev/null 2>&1 || true
  done
  sleep 0.5
  kill $srv 2>/dev/null || true
  kill $dump
  wait $dump 2>/dev/null || true
}
resume_case tls12-ticket-resumption 44315
