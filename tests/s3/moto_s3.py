"""A real S3 API for tests/it/s3.rs: moto in server mode on 127.0.0.1 and a free port, with
authentication on (every request must be signed with the access key created here).

Usage: moto_s3.py BUCKET REQUEST_LOG
Prints one JSON line {"port", "access_key_id", "secret_access_key"} when the bucket exists,
then serves until its standard input closes. Every request is logged to REQUEST_LOG as
`METHOD PATH?QUERY STATUS` (multipart uploads show as `POST ...?uploads`, then
`PUT ...?partNumber=...`, then `POST ...?uploadId=...`; a single PUT as `PUT path`).
"""
import json
import logging
import re
import sys

import boto3
from moto import settings
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

bucket, request_log = sys.argv[1], sys.argv[2]


class Plain(logging.Formatter):
    """werkzeug colours some statuses (404, 204, ...) with terminal escapes: drop them."""

    def format(self, record):
        return re.sub(r"\x1b\[[0-9;]*m", "", super().format(record))


handler = logging.FileHandler(request_log)
handler.setFormatter(Plain("%(message)s"))
werkzeug = logging.getLogger("werkzeug")
werkzeug.addHandler(handler)
werkzeug.setLevel(logging.INFO)
werkzeug.propagate = False

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=True)
server.start()
_, port = server.get_host_and_port()
endpoint = f"http://127.0.0.1:{port}"

# Set up (unauthenticated, as moto allows until told otherwise): a user allowed to use S3,
# its access key, and the bucket.
setup = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
iam = boto3.client("iam", **setup)
iam.create_user(UserName="cspcost")
iam.put_user_policy(
    UserName="cspcost",
    PolicyName="lake",
    PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    ),
)
key = iam.create_access_key(UserName="cspcost")["AccessKey"]
boto3.client("s3", **setup).create_bucket(Bucket=bucket)
# From now on every request must carry a valid signature of a known access key.
settings.INITIAL_NO_AUTH_ACTION_COUNT = 0

print(json.dumps({"port": port, "access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}), flush=True)
sys.stdin.read()
server.stop()
