"""The least CPU a Python broker spends per flow: the same AWS calls the
broker made per flow (counted on the wire by tollgate-bench's proxy), made
with boto3 against the same emulator, with payloads of the same shape, and
nothing else: no HTTP server, no token check, no policy evaluation.

Usage: boto3_flow.py ENDPOINT FLOWS CALLS_JSON
CALLS_JSON maps `service:Operation` to calls per flow. Prints one JSON line:
{"flows", "cpu_seconds", "replayed": {...}, "skipped": [...]}; the CPU time
is this process's user + system time (time.process_time) over the calls
only, after the clients are made and one warm-up round.
"""

import json
import sys
import time
import uuid

import boto3

endpoint, flows, per_flow = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                aws_session_token="testing", region_name="us-east-1")
ddb = session.client("dynamodb", endpoint_url=endpoint)
kms = session.client("kms", endpoint_url=endpoint)
sts = session.client("sts", endpoint_url=endpoint)
iam = session.client("iam", endpoint_url=endpoint)

table = f"boto3-flow-{uuid.uuid4().hex[:8]}"
ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                 AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                       {"AttributeName": "sk", "AttributeType": "S"}],
                 KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                            {"AttributeName": "sk", "KeyType": "RANGE"}])
key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
    "AWS": "arn:aws:iam::123456789012:root"}, "Action": ["sts:AssumeRole", "sts:TagSession",
                                                        "sts:SetSourceIdentity"]}]})
role = iam.create_role(RoleName=f"boto3-flow-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument=trust,
                       Tags=[{"Key": "environment", "Value": "staging"}])["Role"]
session_policy = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Sid": "TollgateWindow", "Effect": "Allow", "Action": "*", "Resource": "*",
     "Condition": {"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}},
    {"Sid": "TollgateAfterWindow", "Effect": "Deny", "Action": "*", "Resource": "*",
     "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}}]})


def request_item(pk):
    """A stored request's shape: about twenty attributes, a JSON body."""
    body = json.dumps({"id": pk, "requester": {"sub": "alice", "groups": ["developers", "oncall"]},
                       "role_arn": role["Arn"], "duration": 3600, "reason": "x" * 60,
                       "status": "pending", "digest": "0" * 64, "chain_head": "0" * 64})
    item = {"pk": {"S": pk}, "sk": {"S": "REQUEST"}, "body": {"S": body},
            "version": {"N": "1"}, "status": {"S": "pending"}, "requester": {"S": "alice"},
            "expires_at": {"N": "1900000000"}}
    for i in range(13):
        item[f"a{i}"] = {"S": "v" * 20}
    return item


def transact():
    pk = f"REQ#{uuid.uuid4()}"
    event = {"pk": {"S": pk}, "sk": {"S": "EVENT#00001"}, "body": {"S": "e" * 600},
             "signature": {"S": "s" * 96}}
    ddb.transact_write_items(TransactItems=[
        {"Put": {"TableName": table, "Item": request_item(pk),
                 "ConditionExpression": "attribute_not_exists(pk)"}},
        {"Put": {"TableName": table, "Item": event,
                 "ConditionExpression": "attribute_not_exists(pk)"}},
        {"Update": {"TableName": table, "Key": {"pk": {"S": "USER#alice"}, "sk": {"S": "CAPS"}},
                    "UpdateExpression": "ADD open_count :one", "ExpressionAttributeValues": {
                        ":one": {"N": "1"}}}},
    ])
    return pk


last = [transact()]
CALLS = {
    "dynamodb:TransactWriteItems": lambda: last.__setitem__(0, transact()),
    "dynamodb:GetItem": lambda: ddb.get_item(TableName=table, Key={
        "pk": {"S": last[0]}, "sk": {"S": "REQUEST"}}, ConsistentRead=True),
    "dynamodb:Query": lambda: ddb.query(
        TableName=table, KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": last[0]}}, ConsistentRead=True),
    "dynamodb:PutItem": lambda: ddb.put_item(TableName=table, Item=request_item(f"REQ#{uuid.uuid4()}")),
    "kms:Sign": lambda: kms.sign(KeyId=key, Message=b"\x00" * 32, MessageType="RAW",
                                 SigningAlgorithm="ECDSA_SHA_256"),
    "sts:AssumeRole": lambda: sts.assume_role(
        RoleArn=role["Arn"], RoleSessionName="tollgate-01JD0000000000000000000000",
        DurationSeconds=3600, Policy=session_policy, SourceIdentity="alice",
        Tags=[{"Key": "tollgate-request", "Value": "01JD0000000000000000000000"},
              {"Key": "tollgate-requester", "Value": "alice"}]),
    "iam:GetRole": lambda: iam.get_role(RoleName=role["RoleName"]),
}

plan = {op: n for op, n in per_flow.items() if op in CALLS}
skipped = sorted(op for op in per_flow if op not in CALLS)
# One warm-up round: first calls load botocore's service models.
for op in plan:
    CALLS[op]()
totals = {op: round(n * flows) for op, n in plan.items()}
start = time.process_time()
for op, count in totals.items():
    call = CALLS[op]
    for _ in range(count):
        call()
cpu = time.process_time() - start
print(json.dumps({"flows": flows, "cpu_seconds": cpu, "replayed": totals, "skipped": skipped}))
