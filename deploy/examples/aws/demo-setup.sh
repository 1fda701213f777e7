#!/usr/bin/env bash
# Starts a local AWS emulator (moto, from tests/scripts/tools.sh) on 127.0.0.1:4566, stores
# the secret `production/database` in it through the Secrets Manager API, and grants
# http://127.0.0.1:4566 to the chart's `aws` Provider, as a cluster admin would grant a VPC
# endpoint. Run by tests/scripts/demo.sh with DEMO_WORK and KUBECONFIG set.
set -euo pipefail
cache="${AIRLOCK_CACHE:-$HOME/.cache/airlock}"
port=4566
moto="$cache/py/bin/moto_server"
[ -x "$moto" ] || { echo "moto is not installed: run tests/scripts/tools.sh" >&2; exit 1; }
if (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "127.0.0.1:$port is already in use; stop what listens there (the AWS example needs it)" >&2
  exit 1
fi
"$moto" -H 127.0.0.1 -p "$port" >"$DEMO_WORK/moto.log" 2>&1 &
echo $! >"$DEMO_WORK/moto.pid"
for _ in $(seq 1 100); do
  (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
"$cache/py/bin/python" - "$port" <<'PY'
import json, sys, urllib.request
port = sys.argv[1]
body = json.dumps({"Name": "production/database",
                   "SecretString": json.dumps({"username": "admin", "password": "s3cr3t-from-aws"})})
request = urllib.request.Request(
    f"http://127.0.0.1:{port}/", data=body.encode(), method="POST",
    headers={"Content-Type": "application/x-amz-json-1.1",
             "X-Amz-Target": "secretsmanager.CreateSecret",
             "Authorization": "AWS4-HMAC-SHA256 Credential=AKIADEMODEMODEMODEMO/20260101/us-west-2/secretsmanager/aws4_request, SignedHeaders=host, Signature=0"})
print("moto: created", json.load(urllib.request.urlopen(request))["ARN"])
PY
kubectl patch providers.airlock.dev aws --type=json \
  -p "[{\"op\":\"add\",\"path\":\"/spec/allowedOutboundHosts/-\",\"value\":\"http://127.0.0.1:$port\"}]"
