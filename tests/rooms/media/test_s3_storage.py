"""MEDIA_STORAGE=s3: the same fetch and the same checked view, with the files in a private
S3-compatible bucket (django-storages; moto's S3 stands in for the bucket)."""

import subprocess
import sys

import boto3
import pytest
from moto import mock_aws

from rooms.models import Message, Room
from tests.factories import AgentFactory
from tests.payloads import message, notification
from tests.rooms.media.test_inbound_media import JPEG, WA, media_message, settled
from tests.servers import ROOT

pytestmark = pytest.mark.django_db(transaction=True)

BUCKET = "chatbridge-files"


@pytest.fixture
def bucket(settings):
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {
                "BACKEND": "storages.backends.s3.S3Storage",
                "OPTIONS": {
                    "bucket_name": BUCKET,
                    "region_name": "us-east-1",
                    "access_key": "test",
                    "secret_key": "test",
                    "location": "chatbridge",
                    "default_acl": "private",
                    "file_overwrite": False,
                },
            },
        }
        yield boto3.client("s3", region_name="us-east-1")


def test_a_customers_photo_is_kept_in_the_bucket_and_served_by_the_checked_view(
    bucket, client, post_webhook, whatsapp
):
    post_webhook(notification(messages=[message(WA, "agente")]))
    agent = AgentFactory()
    Room.objects.update(status=Room.Status.ASSIGNED, agent=agent)
    post_webhook(notification(messages=[media_message(whatsapp, "image", JPEG, "image/jpeg")]))
    kept = settled()
    assert kept.media_status == Message.MediaStatus.STORED
    (item,) = bucket.list_objects_v2(Bucket=BUCKET)["Contents"]
    assert item["Key"] == f"chatbridge/{kept.file.name}"
    assert bucket.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read() == JPEG
    # Private: no one reads it without credentials.
    acl = bucket.get_object_acl(Bucket=BUCKET, Key=item["Key"])
    assert all(grant["Grantee"].get("URI") is None for grant in acl["Grants"])
    client.force_login(agent)
    response = client.get(f"/files/{kept.pk}")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == JPEG


def test_the_settings_build_the_s3_storage_from_the_environment():
    script = (
        "from django.conf import settings; import json; "
        "print(json.dumps(settings.STORAGES['default'], default=str))"
    )
    env = {
        "DEBUG": "1",
        "MEDIA_STORAGE": "s3",
        "MEDIA_S3_BUCKET": "bank-chat-files",
        "MEDIA_S3_ENDPOINT_URL": "https://s3.internal.example:9000",
        "MEDIA_S3_REGION": "eu-west-1",
        "PATH": "/usr/bin:/bin",
    }
    out = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {script}"],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "chatbridge.settings"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert '"BACKEND": "storages.backends.s3.S3Storage"' in out
    assert '"bucket_name": "bank-chat-files"' in out
    assert '"endpoint_url": "https://s3.internal.example:9000"' in out
    assert '"default_acl": "private"' in out
