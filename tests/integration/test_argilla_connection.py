"""Argilla servers the way teams run them: in a private Hugging Face Space (a gateway that wants the team's Hub
token before Argilla sees a request) and behind HTTPS with a certificate of their own authority. A reverse proxy in
front of the real local Argilla plays the gateway / the TLS terminator (tests/integration/proxy.py); everything else
is real: the worker's command line and jobs, the Argilla SDK, the server."""

from __future__ import annotations

import json
import os
import ssl

import argilla as rg
import pytest
import trustme

from tests.integration.cli import run_worker
from tests.integration.proxy import argilla_proxy
from worker.config import load_settings
from worker.errors import ArgillaRefusedError
from worker.services import Services

SPACE_TOKEN = "hf_team_space_token"  # a stand-in: the proxy checks it, nothing else reads it


@pytest.fixture
def their_dataset(local_argilla, stack_settings, dataset_name):
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    dataset = rg.Dataset(name=dataset_name, workspace=stack_settings.workspace, client=client, settings=rg.Settings(
        fields=[rg.TextField(name="message")], questions=[rg.LabelQuestion(name="kind", labels=["ham", "spam"])]))
    return dataset.create()


def _ingest(stack_settings, dataset_name, tmp_path, url: str, **env: str):
    data = tmp_path / "messages.jsonl"
    data.write_text("\n".join(json.dumps(row) for row in [{"text": "see you at 6", "label": "ham"},
                                                          {"text": "WIN a prize, text 8080", "label": "spam"}]))
    environment = {**os.environ, "ARGILLA_WORKER_ARGILLA__API_KEY": stack_settings.api_key.get_secret_value(),
                   "ARGILLA_WORKER_ARGILLA__API_URL": url, "ARGILLA_WORKER_ARGILLA__DATASET": dataset_name,
                   "ARGILLA_WORKER_ARGILLA__WORKSPACE": stack_settings.workspace, **env}
    environment.pop("HF_TOKEN", None)
    return run_worker(["ingest", str(data), "--label-column", "label"], environment)


def test_an_argilla_in_a_private_space_is_reached_with_the_hub_token(their_dataset, stack_settings, dataset_name,
                                                                      tmp_path):
    """Without the token the gateway answers 404: one line saying to set HF_TOKEN or argilla.hf_token, nothing
    written. With it every request carries it, and the records land on the server behind."""
    with argilla_proxy(stack_settings.api_url, bearer=SPACE_TOKEN) as space:
        refused = _ingest(stack_settings, dataset_name, tmp_path, space.url)
        written_before_the_token = list(their_dataset.records)
        admitted = _ingest(stack_settings, dataset_name, tmp_path, space.url,
                           ARGILLA_WORKER_ARGILLA__HF_TOKEN=SPACE_TOKEN)

    assert refused.returncode != 0 and "Traceback" not in refused.stderr + refused.stdout
    assert "answered 404" in refused.stderr and "set HF_TOKEN or argilla.hf_token" in refused.stderr, refused.stderr
    assert written_before_the_token == []
    assert admitted.returncode == 0, admitted.stderr[-3000:]
    assert "2 records created" in admitted.stdout
    assert f"Bearer {SPACE_TOKEN}" in space.seen_authorization and space.seen_authorization[-1].endswith(SPACE_TOKEN)
    records = list(their_dataset.records(with_suggestions=True))
    assert sorted(record.fields["message"] for record in records) == ["WIN a prize, text 8080", "see you at 6"]


def test_https_with_the_teams_own_authority_needs_argilla_verify(their_dataset, stack_settings, dataset_name,
                                                                 tmp_path, monkeypatch):
    """The system's authorities do not know the team's: one line naming argilla.verify (not retried as an outage);
    with argilla.verify = their CA bundle, the worker binds to the dataset through HTTPS."""
    authority = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_tls)
    bundle = tmp_path / "team-ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())

    with argilla_proxy(stack_settings.api_url, tls=server_tls) as terminator:
        assert terminator.url.startswith("https://")
        untrusted = _ingest(stack_settings, dataset_name, tmp_path, terminator.url)
        argilla = {"api_url": terminator.url, "dataset": dataset_name, "workspace": stack_settings.workspace}
        with pytest.raises(ArgillaRefusedError, match="argilla.verify"):
            Services(load_settings(argilla=argilla)).labels()
        labels = Services(load_settings(argilla={**argilla, "verify": str(bundle)})).labels()

    assert untrusted.returncode != 0 and "Traceback" not in untrusted.stderr + untrusted.stdout
    assert "TLS certificate is not trusted" in untrusted.stderr and "argilla.verify" in untrusted.stderr
    assert labels == ["ham", "spam"]
    assert not list(their_dataset.records)


def test_a_sign_in_gateway_lets_the_worker_through_with_the_headers_of_argilla_headers_file(
        their_dataset, stack_settings, dataset_name, tmp_path):
    """A gateway like Cloudflare Access redirects a request without its service token to a sign-in page: one line
    saying so and naming argilla.headers_file, nothing written. With the token's two headers in that file every
    request carries them, the records land, and no header value is printed."""
    service_token = {"CF-Access-Client-Id": "0ab1.access", "CF-Access-Client-Secret": "s3cr3t-of-the-team"}
    headers_file = tmp_path / "gateway-headers"
    headers_file.write_text("# the team's Cloudflare Access service token\n"
                            + "".join(f"{name}: {value}\n" for name, value in service_token.items()))
    with argilla_proxy(stack_settings.api_url, sign_in=service_token) as gateway:
        refused = _ingest(stack_settings, dataset_name, tmp_path, gateway.url)
        written_before_the_headers = list(their_dataset.records)
        admitted = _ingest(stack_settings, dataset_name, tmp_path, gateway.url,
                           ARGILLA_WORKER_ARGILLA__HEADERS_FILE=str(headers_file))

    assert refused.returncode != 0 and "Traceback" not in refused.stderr + refused.stdout
    assert "redirects to https://team.cloudflareaccess.com" in refused.stderr, refused.stderr
    assert "argilla.headers_file" in refused.stderr
    assert written_before_the_headers == []
    assert admitted.returncode == 0, admitted.stderr[-3000:]
    assert "2 records created" in admitted.stdout
    assert gateway.seen_headers[-1]["cf-access-client-secret"] == "s3cr3t-of-the-team"
    assert "s3cr3t" not in admitted.stdout + admitted.stderr + refused.stdout + refused.stderr
    assert sorted(record.fields["message"] for record in their_dataset.records) == ["WIN a prize, text 8080",
                                                                                   "see you at 6"]
