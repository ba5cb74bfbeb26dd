"""The stand-in's Storage subset, driven by supabase-py's storage3 2.34.1 and by plain HTTP."""

from __future__ import annotations

import time

import httpx
import pytest
from client_support import ClientFactory, UserFactory
from storage3.exceptions import StorageApiError

from localsupabase import signing
from localsupabase.app import LocalSupabase

pytestmark = pytest.mark.integration


async def _project(stack: LocalSupabase, user_id: str | None = None) -> str:
    """Create a project (anonymous unless ``user_id``) and return its id."""
    project_id: str = await stack.pool.fetchval(
        "insert into public.projects (user_id) values ($1::text::uuid) returning id::text", user_id
    )
    return project_id


async def test_upload_then_download(local_supabase: LocalSupabase, make_client: ClientFactory) -> None:
    """An uploaded clip downloads byte for byte, and its row in storage.objects records size and type."""
    project = await _project(local_supabase)
    client = await make_client(local_supabase.anon_key)
    bucket = client.storage.from_("clips")
    path = f"projects/{project}/clips/take 1.mp4"

    uploaded = await bucket.upload(path, b"\x00\x01video", {"content-type": "video/mp4"})
    content = await bucket.download(path)

    assert uploaded.full_path == f"clips/{path}"
    assert content == b"\x00\x01video"
    metadata = await local_supabase.pool.fetchval(
        "select metadata from storage.objects where bucket_id = 'clips' and name = $1", path
    )
    assert '"size": 7' in metadata
    assert '"mimetype": "video/mp4"' in metadata
    assert (local_supabase.storage_dir / "clips" / path).read_bytes() == b"\x00\x01video"


async def test_existing_object_needs_upsert_or_update(
    local_supabase: LocalSupabase, make_client: ClientFactory
) -> None:
    """A second upload to the same path is a 409 Duplicate; x-upsert or update() replace the content."""
    project = await _project(local_supabase)
    client = await make_client(local_supabase.anon_key)
    bucket = client.storage.from_("audio")
    path = f"projects/{project}/audio/line.mp3"
    await bucket.upload(path, b"first", {"content-type": "audio/mpeg"})

    with pytest.raises(StorageApiError) as duplicate:
        await bucket.upload(path, b"second", {"content-type": "audio/mpeg"})
    await bucket.upload(path, b"third", {"content-type": "audio/mpeg", "upsert": "true"})
    after_upsert = await bucket.download(path)
    await bucket.update(path, b"fourth", {"content-type": "audio/mpeg"})

    assert (duplicate.value.status, duplicate.value.code) == ("409", "Duplicate")
    assert after_upsert == b"third"
    assert await bucket.download(path) == b"fourth"


async def test_public_url_downloads_without_a_key(
    local_supabase: LocalSupabase, make_client: ClientFactory
) -> None:
    """get_public_url of a public bucket downloads over plain HTTP; a private bucket's does not."""
    project = await _project(local_supabase)
    client = await make_client(local_supabase.service_key)
    thumbnail = f"projects/{project}/thumbnails/cover.png"
    clip = f"projects/{project}/clips/a.mp4"
    await client.storage.from_("thumbnails").upload(thumbnail, b"png bytes", {"content-type": "image/png"})
    await client.storage.from_("clips").upload(clip, b"mp4 bytes", {"content-type": "video/mp4"})

    public_url = await client.storage.from_("thumbnails").get_public_url(thumbnail)
    private_url = await client.storage.from_("clips").get_public_url(clip)
    async with httpx.AsyncClient() as http:
        public = await http.get(public_url)
        private = await http.get(private_url)

    assert public_url.startswith(f"{local_supabase.url}/storage/v1/object/public/thumbnails/")
    assert (public.status_code, public.headers["content-type"], public.content) == (
        200,
        "image/png",
        b"png bytes",
    )
    assert private.status_code == 400
    assert private.json()["statusCode"] == "404"


async def test_bucket_rules_refuse_wrong_type_and_size(
    local_supabase: LocalSupabase, make_client: ClientFactory
) -> None:
    """A MIME type outside allowed_mime_types is a 415, a file over file_size_limit a 413; nothing is kept."""
    project = await _project(local_supabase)
    await local_supabase.pool.execute(
        "insert into storage.buckets (id, name, file_size_limit) values ('tiny', 'tiny', 4)"
    )
    client = await make_client(local_supabase.service_key)

    with pytest.raises(StorageApiError) as wrong_type:
        await client.storage.from_("clips").upload(
            f"projects/{project}/clips/notes.txt", b"text", {"content-type": "text/plain"}
        )
    with pytest.raises(StorageApiError) as too_big:
        await client.storage.from_("tiny").upload(
            "big.bin", b"12345", {"content-type": "application/octet-stream"}
        )

    assert (wrong_type.value.status, wrong_type.value.code) == ("415", "invalid_mime_type")
    assert too_big.value.status == "413"
    assert await local_supabase.pool.fetchval("select count(*) from storage.objects") == 0


async def test_storage_policies_follow_the_project(
    local_supabase: LocalSupabase, make_client: ClientFactory, new_user: UserFactory
) -> None:
    """Anon cannot upload into a user's project; a user cannot read another user's files."""
    alice, bob = await new_user(), await new_user()
    alices_project = await _project(local_supabase, alice)
    anon = await make_client(local_supabase.anon_key)
    as_alice = await make_client(local_supabase.anon_key, token=local_supabase.user_token(alice))
    as_bob = await make_client(local_supabase.anon_key, token=local_supabase.user_token(bob))
    path = f"projects/{alices_project}/audio/voice.wav"

    with pytest.raises(StorageApiError) as anon_upload:
        await anon.storage.from_("audio").upload(path, b"intruder", {"content-type": "audio/wav"})
    await as_alice.storage.from_("audio").upload(path, b"alice", {"content-type": "audio/wav"})
    with pytest.raises(StorageApiError) as bob_download:
        await as_bob.storage.from_("audio").download(path)

    assert anon_upload.value.status == "403"
    assert await as_alice.storage.from_("audio").download(path) == b"alice"
    assert (bob_download.value.status, bob_download.value.code) == ("404", "not_found")
    assert await as_bob.storage.from_("audio").remove([path]) == []
    assert await as_alice.storage.from_("audio").exists(path)


async def test_list_and_remove(local_supabase: LocalSupabase, make_client: ClientFactory) -> None:
    """list shows folders then files under a prefix; remove deletes rows and files and returns them."""
    project = await _project(local_supabase)
    client = await make_client(local_supabase.anon_key)
    bucket = client.storage.from_("clips")
    for name in ("b.mp4", "a.mp4", "takes/1.mp4"):
        await bucket.upload(f"projects/{project}/clips/{name}", name.encode(), {"content-type": "video/mp4"})

    listed = await bucket.list(f"projects/{project}/clips")
    searched = await bucket.list(f"projects/{project}/clips", {"search": "b"})
    removed = await bucket.remove(
        [f"projects/{project}/clips/a.mp4", f"projects/{project}/clips/missing.mp4"]
    )

    assert [(item["name"], item["id"] is None) for item in listed] == [
        ("takes", True),
        ("a.mp4", False),
        ("b.mp4", False),
    ]
    assert listed[1]["metadata"]["size"] == len(b"a.mp4")
    assert [item["name"] for item in searched] == ["b.mp4"]
    assert [item["name"] for item in removed] == [f"projects/{project}/clips/a.mp4"]
    assert not (local_supabase.storage_dir / "clips" / "projects" / project / "clips" / "a.mp4").exists()
    assert not await bucket.exists(f"projects/{project}/clips/a.mp4")
    assert [item["name"] for item in await bucket.list(f"projects/{project}/clips")] == ["takes", "b.mp4"]


async def test_unknown_bucket_and_bad_keys(local_supabase: LocalSupabase, make_client: ClientFactory) -> None:
    """Uploading to a missing bucket says Bucket not found; a key outside the bucket folder is refused."""
    client = await make_client(local_supabase.service_key)

    with pytest.raises(StorageApiError) as no_bucket:
        await client.storage.from_("nope").upload("a.txt", b"a", {"content-type": "text/plain"})
    async with httpx.AsyncClient(base_url=local_supabase.url) as http:
        escape = await http.post(
            "/storage/v1/object/clips/x%2F..%2F..%2Fescape.mp4",
            content=b"x",
            headers={"Authorization": f"Bearer {local_supabase.service_key}", "Content-Type": "video/mp4"},
        )

    assert (no_bucket.value.status, no_bucket.value.message) == ("404", "Bucket not found")
    assert escape.status_code == 400
    assert escape.json()["error"] == "InvalidKey"
    assert not (local_supabase.storage_dir.parent / "escape.mp4").exists()


async def test_storage_unavailable_fault(local_supabase: LocalSupabase, make_client: ClientFactory) -> None:
    """While ``faults.storage_unavailable`` is set, Storage answers 503."""
    client = await make_client(local_supabase.service_key)
    local_supabase.faults.storage_unavailable = True

    with pytest.raises(StorageApiError) as failed:
        await client.storage.from_("thumbnails").list()

    assert failed.value.status == "503"


async def test_signed_url_downloads_a_private_object_without_a_key(
    local_supabase: LocalSupabase, make_client: ClientFactory, new_user: UserFactory
) -> None:
    """A user's signed URL of a private clip serves its bytes to a plain HTTP client, once or as a save."""
    alice = await new_user()
    project = await _project(local_supabase, alice)
    as_alice = await make_client(local_supabase.anon_key, token=local_supabase.user_token(alice))
    bucket = as_alice.storage.from_("clips")
    path = f"projects/{project}/clips/take 1.mp4"
    await bucket.upload(path, b"\x00\x01secret video", {"content-type": "video/mp4"})

    signed = await bucket.create_signed_url(path, 60)
    saved = await bucket.create_signed_url(path, 60, {"download": "take.mp4"})
    async with httpx.AsyncClient() as http:
        plain = await http.get(signed["signedURL"] or "")
        attachment = await http.get(saved["signedURL"] or "")

    prefix = f"{local_supabase.url}/storage/v1/object/sign/clips/projects/{project}/clips/take%201.mp4?token="
    assert (signed["signedURL"] or "").startswith(prefix)
    assert signed["signedUrl"] == signed["signedURL"]
    assert (plain.status_code, plain.headers["content-type"], plain.content) == (
        200,
        "video/mp4",
        b"\x00\x01secret video",
    )
    assert "content-disposition" not in plain.headers
    assert attachment.content == b"\x00\x01secret video"
    assert attachment.headers["content-disposition"] == "attachment; filename*=UTF-8''take.mp4"


async def test_signed_urls_in_a_batch(local_supabase: LocalSupabase, make_client: ClientFactory) -> None:
    """create_signed_urls signs each readable path in order and answers an error for a missing one."""
    project = await _project(local_supabase)
    client = await make_client(local_supabase.service_key)
    bucket = client.storage.from_("audio")
    paths = [f"projects/{project}/audio/{name}" for name in ("a.mp3", "missing.mp3", "b.mp3")]
    for path, content in ((paths[0], b"first"), (paths[2], b"second")):
        await bucket.upload(path, content, {"content-type": "audio/mpeg"})

    signed = await bucket.create_signed_urls(paths, 60)
    async with httpx.AsyncClient() as http:
        contents = [(await http.get(item["signedURL"])).content for item in signed if item["signedURL"]]

    assert [item["path"] for item in signed] == paths
    assert [item["error"] is None for item in signed] == [True, False, True]
    assert signed[1]["signedURL"] is None
    assert contents == [b"first", b"second"]


async def test_expired_tampered_or_misdirected_tokens_are_refused(
    local_supabase: LocalSupabase, make_client: ClientFactory
) -> None:
    """An expired token, one signed with another secret or made for another object gets Storage's 400."""
    project = await _project(local_supabase)
    client = await make_client(local_supabase.service_key)
    bucket = client.storage.from_("clips")
    path, other = f"projects/{project}/clips/a.mp4", f"projects/{project}/clips/b.mp4"
    await bucket.upload(path, b"a", {"content-type": "video/mp4"})
    secret = local_supabase.jwt_secret
    base = f"{local_supabase.url}/storage/v1"
    expired = signing.sign(secret, "clips", path, 60, now=time.time() - 3600)
    forged = signing.sign(secret + "-not-it", "clips", path, 60)
    misdirected_token = signing.sign(secret, "clips", other, 60).partition("?token=")[2]
    valid = await bucket.create_signed_url(path, 60)

    async with httpx.AsyncClient() as http:
        answers = {
            "expired": await http.get(base + expired),
            "forged": await http.get(base + forged),
            "misdirected": await http.get(f"{base}/object/sign/clips/{path}?token={misdirected_token}"),
            "no token": await http.get(f"{base}/object/sign/clips/{path}"),
            # A signed-URL token is no API key: it carries no role.
            "as a key": await http.get(
                f"{base}/object/clips/{path}",
                headers={"Authorization": "Bearer " + (valid["signedURL"] or "").partition("?token=")[2]},
            ),
        }

    assert {name: answer.status_code for name, answer in answers.items()} == dict.fromkeys(answers, 400)
    assert {name: answer.json()["error"] for name, answer in answers.items()} == {
        "expired": "InvalidJWT",
        "forged": "InvalidJWT",
        "misdirected": "InvalidSignature",
        "no token": "InvalidRequest",
        "as a key": "InvalidJWT",
    }
    assert answers["expired"].json() == {
        "statusCode": "400",
        "error": "InvalidJWT",
        "message": "the signed URL has expired",
    }


async def test_signing_needs_read_access(
    local_supabase: LocalSupabase, make_client: ClientFactory, new_user: UserFactory
) -> None:
    """Anon and another user cannot sign a private object of alice's project: Object not found, as a read."""
    alice, bob = await new_user(), await new_user()
    project = await _project(local_supabase, alice)
    path = f"projects/{project}/audio/voice.wav"
    as_alice = await make_client(local_supabase.anon_key, token=local_supabase.user_token(alice))
    await as_alice.storage.from_("audio").upload(path, b"alice", {"content-type": "audio/wav"})
    anon = await make_client(local_supabase.anon_key)
    as_bob = await make_client(local_supabase.anon_key, token=local_supabase.user_token(bob))

    with pytest.raises(StorageApiError) as by_anon:
        await anon.storage.from_("audio").create_signed_url(path, 60)
    with pytest.raises(StorageApiError) as by_bob:
        await as_bob.storage.from_("audio").create_signed_url(path, 60)
    batch = await anon.storage.from_("audio").create_signed_urls([path], 60)
    by_alice = await as_alice.storage.from_("audio").create_signed_url(path, 60)

    assert (by_anon.value.status, by_anon.value.code, by_anon.value.message) == (
        "404",
        "not_found",
        "Object not found",
    )
    assert (by_bob.value.status, by_bob.value.code) == ("404", "not_found")
    assert (batch[0]["signedURL"], batch[0]["path"]) == (None, path)
    assert batch[0]["error"]
    assert by_alice["signedURL"] is not None


async def test_sign_requests_are_checked(local_supabase: LocalSupabase) -> None:
    """A sign request without a valid expiresIn or paths is a 400 naming the field; no key is a 400 too."""
    headers = {"Authorization": f"Bearer {local_supabase.service_key}"}
    async with httpx.AsyncClient(base_url=f"{local_supabase.url}/storage/v1", headers=headers) as http:
        zero = await http.post("/object/sign/clips/a.mp4", json={"expiresIn": 0})
        fraction = await http.post("/object/sign/clips/a.mp4", json={"expiresIn": "1.5"})
        no_paths = await http.post("/object/sign/clips", json={"expiresIn": 60, "paths": []})
        no_key = await http.post(
            "/object/sign/clips/a.mp4", json={"expiresIn": 60}, headers={"Authorization": ""}
        )

    assert [r.status_code for r in (zero, fraction, no_paths, no_key)] == [400, 400, 400, 400]
    assert "expiresIn" in zero.json()["message"]
    assert "expiresIn" in fraction.json()["message"]
    assert "paths" in no_paths.json()["message"]
    assert no_key.json()["message"] == "headers must have required property 'authorization'"
