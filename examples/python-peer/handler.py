"""The Python glue ilert-servicenow replaces, for the benchmark's cold-start comparison.

What a user would otherwise write as a Lambda function: boto3 for the secret (read once per
environment), requests for ServiceNow's Table API, a lookup by correlation_id and then a create
or an update. It does less than the function (no read-back, no note memory, no retries), which
favours it. It runs under a minimal loop over the Lambda Runtime API, as Lambda's Python
runtime runs a handler (the real runtime's own start-up, awslambdaric, is not counted: that
favours it too).

`cargo run --release --example bench -- --python-peer` runs it, from a virtual environment in
target/tools/python-peer with boto3 and requests.
"""

import json
import os
import urllib.request

import boto3
import requests

_secrets = boto3.client("secretsmanager")
_session = requests.Session()
_connection = None

STATES = {"PENDING": "1", "ACCEPTED": "2", "RESOLVED": "6"}


def _servicenow():
    global _connection
    if _connection is None:
        secret = _secrets.get_secret_value(SecretId=os.environ["SERVICENOW_SECRET_ID"])
        _connection = json.loads(secret["SecretString"])
    return _connection


def handler(event, _context):
    connection = _servicenow()
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    if headers.get("authorization") != "Bearer " + connection["webhook_token"]:
        return {"statusCode": 401, "body": json.dumps({"error": "unauthorized"})}
    alert = json.loads(event["body"])
    auth = (connection["username"], connection["password"])
    table = connection["instance_url"].rstrip("/") + "/api/now/table/incident"
    json_headers = {"Accept": "application/json"}
    found = _session.get(
        table,
        params={
            "sysparm_query": "correlation_id=ilert:" + alert["id"],
            "sysparm_fields": "sys_id,number,state",
            "sysparm_limit": "1",
        },
        auth=auth,
        headers=json_headers,
        timeout=10,
    )
    found.raise_for_status()
    incidents = found.json()["result"]
    fields = {"state": STATES.get(alert.get("status"), "1")}
    if alert.get("comment"):
        fields["work_notes"] = alert["comment"]
    if fields["state"] == "6":
        fields["close_code"] = "Solution provided"
        fields["close_notes"] = "Resolved in iLert"
    if incidents:
        written = _session.patch(
            table + "/" + incidents[0]["sys_id"],
            json=fields,
            auth=auth,
            headers=json_headers,
            timeout=10,
        )
        action = "updated"
    else:
        fields["correlation_id"] = "ilert:" + alert["id"]
        fields["short_description"] = alert.get("summary", "")[:160]
        fields["description"] = alert.get("details", "")
        written = _session.post(table, json=fields, auth=auth, headers=json_headers, timeout=10)
        action = "created"
    written.raise_for_status()
    number = written.json()["result"]["number"]
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"action": action, "incident": number}),
    }


def main():
    api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
    while True:
        with urllib.request.urlopen(api + "next") as invocation:
            request_id = invocation.headers["Lambda-Runtime-Aws-Request-Id"]
            event = json.loads(invocation.read())
        try:
            answer, outcome = handler(event, None), "/response"
        except Exception as error:  # what the Python runtime reports for an unhandled error
            answer, outcome = {"errorMessage": str(error), "errorType": type(error).__name__}, "/error"
        urllib.request.urlopen(
            urllib.request.Request(
                api + request_id + outcome, data=json.dumps(answer).encode(), method="POST"
            )
        ).read()


if __name__ == "__main__":
    main()
