"""The dashboard's server side without a browser: login codes and cookies, the Gate's origin rules,
uploads streamed into the inbox (names, folders, limits), the page's files, the page's view of the
jobs, move-to-front in both stores. Real sockets to a real ControlServer on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from midframe.api.control import ControlServer, host_names, new_token
from midframe.api.server import Limits
from midframe.config import config_from_mapping
from midframe.daemon.store.memory import MemoryJobStore
from midframe.daemon.store.sqlite import JobStateError, SqliteJobStore
from midframe.web import Dashboard, Sessions, load_assets
from midframe.web.sessions import cookie_name, cookie_value
from midframe.web.upload import TEMP_PREFIX, UploadRefused, receive, remove_stale_uploads, safe_name, upload_folder
from midframe.web.view import dashboard_state
from tests.net_helpers import request

EXTENSIONS = ("mp4", "mkv", "mov")


# --- pure parts --------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_login_code_works_once_and_only_while_fresh():
    clock = Clock()
    sessions = Sessions(clock=clock, code_ttl_s=60, session_ttl_s=3600)
    code = sessions.new_code()
    assert len(code) >= 40 and sessions.redeem("x" + code) is None
    session = sessions.redeem(code)
    assert session and session != code and sessions.valid(session)
    assert sessions.redeem(code) is None                      # used up
    late = sessions.new_code()
    clock.now += 61
    assert sessions.redeem(late) is None                       # expired
    assert sessions.valid(session)
    clock.now += 3600
    assert not sessions.valid(session)                         # the session too, in time
    other = sessions.redeem(sessions.new_code())
    sessions.end(other)
    assert not sessions.valid(other) and not sessions.valid(None) and not sessions.valid("")


def test_cookie_parsing_takes_only_the_named_cookie():
    header = "a=1; midframe_session_80=abc; midframe_session_8080=def;x"
    assert cookie_value(header, cookie_name(8080)) == "def"
    assert cookie_value(header, cookie_name(80)) == "abc"
    assert cookie_value(header, cookie_name(1)) is None and cookie_value(None, "a") is None


@pytest.mark.parametrize(("raw_name", "expected"), [
    ("clip.mp4", "clip.mp4"),
    ("../../etc/cron.d/x.mp4", "x.mp4"),
    ("..\\..\\Windows\\x.MP4", "x.MP4"),
    ("/abs/path/holiday.mkv", "holiday.mkv"),
    ("a\x00b\nc.mov", "a_b_c.mov"),
    ("what?<>|*:\".mp4", "what_______.mp4"),
    ("...hidden.mp4", "hidden.mp4"),
    ("CON.mp4", "_CON.mp4"),
    ("trailing.mp4. . ", "trailing.mp4"),
    ("é" * 200 + ".mp4", "é" * 118 + ".mp4"),
])
def test_upload_names_lose_every_folder_part(raw_name, expected):
    assert safe_name(raw_name, extensions=EXTENSIONS) == expected


@pytest.mark.parametrize("raw_name", ["", "..", "../", "notes.txt", "x.mp4.part", "~$lock.mp4", "mp4", " . "])
def test_upload_names_that_are_not_videos_are_refused(raw_name):
    with pytest.raises(UploadRefused):
        safe_name(raw_name, extensions=EXTENSIONS)


def test_uploads_go_only_into_the_inbox_or_a_profile_folder(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "60fps").mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (inbox / "sneaky").symlink_to(outside)
    assert upload_folder(inbox, "", profiles=["60fps"]) == inbox
    assert upload_folder(inbox, "60fps", profiles=["60fps"]) == inbox / "60fps"
    for folder in ("../outbox", "60fps/..", "/tmp", "nope"):
        with pytest.raises(UploadRefused, match="not a profile"):
            upload_folder(inbox, folder, profiles=["60fps"])
    with pytest.raises(UploadRefused, match="leads outside the inbox"):
        upload_folder(inbox, "sneaky", profiles=["60fps", "sneaky"])


def test_receive_writes_a_hidden_file_then_renames_it_never_over_another(tmp_path):
    seen_during = []

    def pieces(data: bytes):
        for start in range(0, len(data), 1000):
            seen_during.append(sorted(p.name for p in tmp_path.iterdir()))
            yield data[start:start + 1000]

    (tmp_path / "clip.mp4").write_bytes(b"the user's own file")
    data = os.urandom(5000)
    got = receive(pieces(data), folder=tmp_path, name="clip.mp4", length=len(data), free_bytes=lambda p: 1 << 40)
    assert got.path == tmp_path / "clip (2).mp4" and got.path.read_bytes() == data and got.size == 5000
    assert (tmp_path / "clip.mp4").read_bytes() == b"the user's own file"
    assert all(name.startswith(TEMP_PREFIX) for names in seen_during[1:] for name in names if "clip" not in name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip (2).mp4", "clip.mp4"]

    def cut_short():
        yield b"x" * 100
        raise ConnectionError("gone")

    with pytest.raises(ConnectionError):
        receive(cut_short(), folder=tmp_path, name="b.mp4", length=1000, free_bytes=lambda p: 1 << 40)
    with pytest.raises(UploadRefused, match="do not fit"):
        receive(iter([b"x"]), folder=tmp_path, name="c.mp4", length=1 << 30, free_bytes=lambda p: 1 << 29)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip (2).mp4", "clip.mp4"]
    (tmp_path / f"{TEMP_PREFIX}dead.part").write_bytes(b"left by a crash")
    assert [p.name for p in remove_stale_uploads([tmp_path])] == [f"{TEMP_PREFIX}dead.part"]


def test_the_view_orders_the_queue_and_the_history():
    jobs = [
        {"id": 1, "name": "a.mp4", "relpath": "a.mp4", "state": "done", "queue_seq": 1, "started_at": 10.0,
         "finished_at": 25.5, "output": "/out/a.50fps.mp4", "error": None},
        {"id": 2, "name": "b.mp4", "relpath": "60fps/b.mp4", "state": "failed", "queue_seq": 2, "started_at": 30.0,
         "finished_at": 31.0, "output": None, "error": "not a video: no video stream"},
        {"id": 3, "name": "c.mp4", "relpath": "c.mp4", "state": "queued", "queue_seq": 5, "size": 10},
        {"id": 4, "name": "d.mp4", "relpath": "d.mp4", "state": "queued", "queue_seq": -1, "size": 20},
        {"id": 5, "name": "e.mp4", "relpath": "slow/e.mp4", "state": "running", "queue_seq": 3, "profile": "slow",
         "workers": {"tcp://10.0.0.2:4000": 3}},
    ]
    status = {"state": "working", "current": {"id": 5, "name": "e.mp4", "progress": 0.5}, "queued": 2, "done": 1,
              "failed": 1}
    view = dashboard_state(status, jobs, folders=["", "slow"], upload_max_bytes=1 << 20)
    assert [job["id"] for job in view["queue"]] == [4, 3]
    assert [(job["id"], job["folder"], job["output"], job["duration_s"]) for job in view["history"]] == [
        (2, "60fps", None, 1.0), (1, "", "a.50fps.mp4", 15.5)]
    assert view["history"][0]["error"] == "not a video: no video stream" and view["history"][1]["error"] is None
    assert view["status"]["current"]["folder"] == "slow" and view["status"]["current"]["profile"] == "slow"
    assert view["status"]["current"]["workers"] == {"tcp://10.0.0.2:4000": 3} and view["farm"] is None
    assert "/out" not in json.dumps(view)                      # names, not the server's paths


def test_the_view_escapes_names_and_texts_as_the_cli_does():
    """Issue 19, finding 11: a bidi override (U+202E) or a control character in a name showed raw on
    the page; it reads as in `midframe jobs` (midframe.sentences.said)."""
    from midframe.sentences import said

    evil = "holiday\u202egpj.mkv"                          # shows as "holidayvkm.jpg" when not escaped
    jobs = [
        {"id": 1, "name": evil, "relpath": f"in\x1bside/{evil}", "state": "failed", "started_at": 1.0,
         "finished_at": 2.0, "output": None, "error": f"{evil} is not a video\nforged line"},
        {"id": 2, "name": "a\u2028b.mp4", "relpath": "a\u2028b.mp4", "state": "queued", "error": "x\ry"},
        {"id": 3, "name": "c\tz.mp4", "relpath": "c\tz.mp4", "state": "running", "output": None},
        {"id": 4, "name": "été.mp4", "relpath": "été.mp4", "state": "done", "output": "/out/été\u202e.50fps.mp4",
         "started_at": 1.0, "finished_at": 2.0},
    ]
    status = {"state": "paused", "current": {"id": 3, "name": "c\tz.mp4", "progress": 0.1}, "queued": 1, "done": 1,
              "failed": 1, "paused_reason": "outbox (/srv/out\u202e): the disk is full",
              "farm": {"scheduler": "tcp://h:1", "workers": 0, "busy": 0, "problem": "no\nworkers"}}
    view = dashboard_state(status, jobs, folders=[""], upload_max_bytes=1)
    failed, done = view["history"][1], view["history"][0]
    assert (failed["name"], failed["folder"], failed["error"]) == (
        "holiday\\u202egpj.mkv", "in\\x1bside", "holiday\\u202egpj.mkv is not a video\\nforged line")
    assert failed["name"] == said(evil) and done["name"] == "été.mp4" and done["output"] == "été\\u202e.50fps.mp4"
    assert (view["queue"][0]["name"], view["queue"][0]["error"]) == ("a\\u2028b.mp4", "x\\ry")
    assert view["status"]["current"]["name"] == "c\\tz.mp4"
    assert view["status"]["paused_reason"] == "outbox (/srv/out\\u202e): the disk is full"
    assert view["farm"]["problem"] == view["status"]["farm"]["problem"] == "no\\nworkers"
    assert status["current"]["name"] == "c\tz.mp4"              # what it was given is left as it was
    from midframe.web.view import unseen_view

    assert unseen_view({"failed_unseen": 1, "failed_unseen_names": [evil]}) == {
        "failed_unseen": 1, "failed_unseen_names": ["holiday\\u202egpj.mkv"]}


@pytest.mark.parametrize("make", [lambda tmp: MemoryJobStore(), lambda tmp: SqliteJobStore(tmp / "jobs.sqlite3")])
def test_move_to_front_makes_a_queued_job_the_next_claimed(tmp_path, make):
    store = make(tmp_path)
    ids = [store.add(tmp_path / f"{n}.mp4", relpath=f"{n}.mp4", size=1, mtime=1.0, fingerprint=n).id
           for n in ("a", "b", "c")]
    store.move_to_front(ids[2])
    assert store.claim().id == ids[2]
    with pytest.raises(JobStateError, match="only a queued job"):
        store.move_to_front(ids[2])                              # running now
    store.move_to_front(ids[1])
    assert [store.claim().id, store.claim().id] == [ids[1], ids[0]]
    with pytest.raises(JobStateError, match="no job 99"):
        store.move_to_front(99)
    store.close()


def test_host_names_follow_the_listening_address():
    addresses = lambda: ["127.0.0.1", "192.168.1.5", "::1", "fd00::2"]  # noqa: E731
    assert host_names("127.0.0.1", bound="127.0.0.1", addresses=addresses) == ("127.0.0.1", "localhost")
    assert host_names("192.168.1.5", bound="192.168.1.5", addresses=addresses) == ("192.168.1.5",)
    everywhere = host_names("0.0.0.0", bound="0.0.0.0", addresses=addresses, hostname=lambda: "NAS")
    assert everywhere == ("127.0.0.1", "localhost", "192.168.1.5", "nas", "nas.local")
    assert "[fd00::2]" in host_names("::", bound="::", addresses=addresses, hostname=lambda: "nas")


# --- the server ----------------------------------------------------------------------------------------


class FakeDaemon:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def status(self):
        return {"state": "idle", "current": None, "queued": 0, "done": 0, "failed": 0}

    def jobs(self):
        return []

    def pause(self):
        self.calls.append(("pause",))
        return {"state": "paused"}

    def move_to_front(self, job_id):
        self.calls.append(("front", job_id))
        return {"id": job_id}


def serve_web(tmp_path: Path, limits: Limits):
    inbox = tmp_path / "inbox"
    (inbox / "60fps").mkdir(parents=True)
    config = config_from_mapping({"inbox": str(inbox), "daemon": {"upload_max_mb": 1, "extensions": list(EXTENSIONS)},
                                  "engine": {"name": "dis"}, "profiles": {"60fps": {"engine": {"target_fps": 60}}}})
    target = FakeDaemon()
    dashboard = Dashboard(target, sessions=Sessions(), config=lambda: config, inbox=inbox, assets=load_assets(),
                          free_bytes=lambda folder: 1 << 40)
    token = new_token(tmp_path / "state")
    server = ControlServer(target, token=token, web=dashboard, limits=limits)
    url = server.start()
    return server, Web(url, token, target, inbox)


@pytest.fixture
def web(tmp_path):
    server, found = serve_web(tmp_path, Limits(max_streams=1, stream_idle_s=1.0))
    yield found
    server.stop()


class Web:
    def __init__(self, url: str, token: str, target: FakeDaemon, inbox: Path) -> None:
        self.url, self.token, self.target, self.inbox = url, token, target, inbox
        self.origin = url

    def ask(self, line: str, *headers: str, body: bytes = b"") -> tuple[int, bytes, str]:
        data = request(self.url, line, *headers, *([f"Content-Length: {len(body)}"] if body else []), body=body)
        host, port = self.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(data)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        answer = b"".join(chunks)
        head, _, content = answer.partition(b"\r\n\r\n")
        return int(answer.split(b" ", 2)[1]), content, head.decode("latin-1")

    def login(self) -> str:
        status, body, _ = self.ask("POST /dashboard/login HTTP/1.1", f"Authorization: Bearer {self.token}")
        assert status == 200
        link = json.loads(body)["urls"][0]
        assert link.startswith(self.url + "/login?code=")
        status, _, head = self.ask(f"GET {link.removeprefix(self.url)} HTTP/1.1")
        assert status == 200
        cookie = next(line for line in head.split("\r\n") if line.lower().startswith("set-cookie:"))
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        return "Cookie: " + cookie.split(":", 1)[1].split(";")[0].strip()


def test_without_the_token_or_a_login_the_api_answers_401(web):
    for line in ("GET /status HTTP/1.1", "GET /dashboard/state HTTP/1.1", "GET /dashboard/settings HTTP/1.1",
                 "POST /pause HTTP/1.1", "POST /dashboard/logout HTTP/1.1", "GET /jobs HTTP/1.1"):
        assert web.ask(line, f"Origin: {web.origin}")[0] == 401, line
    assert web.ask("GET /status HTTP/1.1", "Cookie: " + cookie_name(1) + "=made-up")[0] == 401
    assert web.ask("GET / HTTP/1.1")[0] == 200                 # the page itself holds nothing
    assert web.target.calls == []


def test_a_login_link_gives_a_cookie_that_works_like_the_token(web):
    cookie = web.login()
    status, body, _ = web.ask("GET /dashboard/state HTTP/1.1", cookie)
    assert status == 200 and json.loads(body)["status"]["state"] == "idle"
    assert web.ask("POST /pause HTTP/1.1", cookie, f"Origin: {web.origin}")[0] == 200
    assert web.ask("POST /jobs/7/front HTTP/1.1", cookie, f"Origin: {web.origin}")[0] == 200
    assert web.target.calls == [("pause",), ("front", 7)]
    # The cookie cannot make login codes (the token only), and logging out ends it.
    assert web.ask("POST /dashboard/login HTTP/1.1", cookie, f"Origin: {web.origin}")[0] == 401
    assert web.ask("POST /dashboard/logout HTTP/1.1", cookie, f"Origin: {web.origin}")[0] == 200
    assert web.ask("GET /dashboard/state HTTP/1.1", cookie)[0] == 401


def test_a_used_or_unknown_code_does_not_log_in(web):
    status, body, _ = web.ask("POST /dashboard/login HTTP/1.1", f"Authorization: Bearer {web.token}")
    path = json.loads(body)["urls"][0].removeprefix(web.url)
    assert web.ask(f"GET {path} HTTP/1.1")[0] == 200
    status, body, head = web.ask(f"GET {path} HTTP/1.1")
    assert status == 403 and b"does not work" in body and "set-cookie" not in head.lower()
    assert web.ask("GET /login?code=guess HTTP/1.1")[0] == 403 and web.ask("GET /login HTTP/1.1")[0] == 403


def test_requests_from_other_sites_are_refused(web):
    cookie = web.login()
    port = web.url.rsplit(":", 1)[1]
    for origin in ("http://evil.example", f"http://127.0.0.1:{int(port) + 1}", "null", f"https://127.0.0.1:{port}"):
        assert web.ask("POST /pause HTTP/1.1", cookie, f"Origin: {origin}")[0] == 403, origin
        assert web.ask("POST /pause HTTP/1.1", f"Authorization: Bearer {web.token}", f"Origin: {origin}")[0] == 403
    assert web.ask("POST /pause HTTP/1.1", cookie)[0] == 403                    # a change needs our Origin
    for site in ("cross-site", "same-site"):
        assert web.ask("GET /dashboard/state HTTP/1.1", cookie, f"Sec-Fetch-Site: {site}")[0] == 403
    assert web.ask("GET /dashboard/state HTTP/1.1", cookie, "Sec-Fetch-Site: same-origin")[0] == 200
    assert web.ask("GET / HTTP/1.1", "Sec-Fetch-Site: cross-site")[0] == 200      # a link to the page is fine
    assert web.target.calls == []


def test_no_file_is_read_through_the_page_routes(web, tmp_path):
    cookie = web.login()
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/app.js/../../secret.txt", "/static/app.js",
                 "//etc/passwd", "/index.html", f"/{secret}"):
        status, body, _ = web.ask(f"GET {path} HTTP/1.1", cookie)
        assert status == 404 and b"do not serve" not in body and b"root:" not in body, path
    status, body, head = web.ask("GET /app.js HTTP/1.1")
    assert status == 200 and "text/javascript" in head and b"/dashboard/state" in body
    assert "frame-ancestors 'none'" in head and "X-Frame-Options: DENY" in head


def upload(web: Web, cookie: str, name: str, data: bytes, folder: str = "") -> tuple[int, dict]:
    from urllib.parse import quote

    status, body, _ = web.ask(f"POST /dashboard/upload?name={quote(name)}&folder={quote(folder)} HTTP/1.1", cookie,
                              f"Origin: {web.origin}", body=data)
    return status, json.loads(body)


def test_an_upload_streams_into_the_inbox_under_a_safe_name(web):
    cookie = web.login()
    data = os.urandom(300_000)                                 # far over the API's 64 KiB
    status, answer = upload(web, cookie, "../../outbox/holiday.mp4", data)
    assert status == 200 and answer == {"name": "holiday.mp4", "folder": "", "bytes": 300_000}
    assert (web.inbox / "holiday.mp4").read_bytes() == data
    status, answer = upload(web, cookie, "holiday.mp4", b"second")
    assert status == 200 and answer["name"] == "holiday (2).mp4"
    assert (web.inbox / "holiday.mp4").read_bytes() == data
    assert upload(web, cookie, "notes.txt", b"x")[0] == 415
    assert upload(web, cookie, "a.mp4", b"x", folder="../state")[0] == 400
    status, answer = upload(web, cookie, "big.mp4", b"x" * ((1 << 20) + 1))
    assert status == 413 and "daemon.upload_max_mb" in answer["error"]
    status, answer = upload(web, cookie, "fast.mp4", b"into a profile", folder="60fps")
    assert status == 200 and answer == {"name": "fast.mp4", "folder": "60fps", "bytes": 14}
    assert (web.inbox / "60fps" / "fast.mp4").read_bytes() == b"into a profile"
    assert sorted(p.name for p in web.inbox.iterdir()) == ["60fps", "holiday (2).mp4", "holiday.mp4"]


def test_the_page_lists_the_upload_folders_and_each_profiles_effective_settings(web):
    cookie = web.login()
    status, body, _ = web.ask("GET /dashboard/state HTTP/1.1", cookie)
    assert json.loads(body)["folders"] == ["", "60fps"]
    status, body, _ = web.ask("GET /dashboard/settings HTTP/1.1", cookie)
    inbox, fast = json.loads(body)
    assert (inbox["profile"], inbox["engine"]["name"], inbox["engine"]["target_fps"]) == (None, "dis", None)
    assert (fast["profile"], fast["engine"]["name"], fast["engine"]["target_fps"]) == ("60fps", "dis", "60")
    assert fast["folder"] == str(web.inbox / "60fps")


def test_an_upload_needs_the_login_before_any_byte_and_a_cut_one_leaves_nothing(web):
    host, port = web.url.removeprefix("http://").split(":")
    head = request(web.url, "POST /dashboard/upload?name=x.mp4 HTTP/1.1", f"Origin: {web.origin}",
                   "Content-Length: 500000")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(head)                                     # no body sent: refused from the head alone
        assert sock.recv(4096).startswith(b"HTTP/1.1 401 ")
    cookie = web.login()
    head = request(web.url, "POST /dashboard/upload?name=cut.mp4 HTTP/1.1", cookie, f"Origin: {web.origin}",
                   "Content-Length: 500000")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(head + b"x" * 100_000)
        time.sleep(0.3)
        assert any(p.name.startswith(TEMP_PREFIX) for p in web.inbox.iterdir())      # being written, hidden
        # A second upload while this one is running: refused (max_streams=1), the API still answers.
        assert upload(web, cookie, "other.mp4", b"x")[0] == 503
        assert web.ask("GET /dashboard/state HTTP/1.1", cookie)[0] == 200
    deadline = time.monotonic() + 5
    while len(list(web.inbox.iterdir())) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p.name for p in web.inbox.iterdir()] == ["60fps"]


def test_trickling_uploads_are_cut_off_by_their_total_deadline_and_free_their_slots(tmp_path):
    """Issue 19, finding 11: two logged-in uploads sending a byte every so often (never idle long enough
    to be cut off) held both upload slots for ever. Here at 1000 bytes a second after a 1 s grace."""
    server, web = serve_web(tmp_path, Limits(max_streams=2, stream_idle_s=1.0, stream_grace_s=1.0,
                                             stream_min_rate=1000))
    try:
        cookie = web.login()
        host, port = web.url.removeprefix("http://").split(":")
        socks = []
        for number in (1, 2):
            head = request(web.url, f"POST /dashboard/upload?name=slow{number}.mp4 HTTP/1.1", cookie,
                           f"Origin: {web.origin}", "Content-Length: 500000")
            sock = socket.create_connection((host, int(port)), timeout=10)
            sock.sendall(head + b"x")
            socks.append(sock)
        time.sleep(0.2)
        assert upload(web, cookie, "third.mp4", b"x")[0] == 503           # both slots taken
        started = time.monotonic()
        answers: dict[int, bytes] = {}
        while len(answers) < 2 and time.monotonic() - started < 10:
            for number, sock in enumerate(socks):
                if number in answers:
                    continue
                try:
                    sock.sendall(b"x")                                     # well inside the idle limit
                    sock.settimeout(0.05)
                    answers[number] = sock.recv(4096)
                except (TimeoutError, BlockingIOError):
                    pass
                except OSError:
                    answers[number] = b"closed"
            time.sleep(0.3)
        for sock in socks:
            sock.close()
        assert len(answers) == 2 and time.monotonic() - started < 5, answers
        for answer in answers.values():
            assert answer.startswith(b"HTTP/1.1 400 ") and b"slower than 1000 bytes a second" in answer, answer
        status, answer = upload(web, cookie, "third.mp4", b"x")           # the slots are free again
        assert status == 200 and answer["name"] == "third.mp4"
        assert sorted(p.name for p in web.inbox.iterdir()) == ["60fps", "third.mp4"]
    finally:
        server.stop()


def test_a_linked_duplicate_says_whose_output_it_is_not_a_conversion_time():
    jobs = [
        {"id": 1, "name": "a.mp4", "relpath": "a.mp4", "state": "done", "started_at": 10.0, "finished_at": 70.0,
         "output": "/out/a.50fps.mp4", "error": None},
        {"id": 2, "name": "a copy.mp4", "relpath": "a copy.mp4", "state": "done", "started_at": 80.0,
         "finished_at": 81.0, "output": "/out/a copy.50fps.mp4", "error": None, "duplicate_of": 1},
    ]
    status = {"state": "idle", "current": None, "queued": 0, "done": 2, "failed": 0}
    linked, converted = dashboard_state(status, jobs, folders=[""], upload_max_bytes=0)["history"]
    assert linked["linked"] == "linked to the earlier output of job 1 (nothing converted)"
    assert linked["duration_s"] is None and linked["duplicate_of"] == 1
    assert converted["linked"] is None and converted["duration_s"] == 60.0
    from midframe.sentences import jobs_sentence

    assert jobs_sentence([{**jobs[1], "profile": None}]).endswith(
        "a copy.mp4  (linked to the earlier output of job 1, nothing converted)")


def test_the_settings_say_which_of_factor_and_target_fps_applies(tmp_path):
    from midframe.config import config_from_mapping
    from midframe.web import effective_settings

    config = config_from_mapping({"engine": {"factor": 3}, "profiles": {
        "60fps": {"engine": {"target_fps": 60}}, "slow": {"engine": {"mode": "slowmo", "factor": 4}}}})
    inbox, fast, slow = effective_settings(config, tmp_path)
    assert inbox["applies"].startswith("factor 3 applies: 3 times the source's frames") and inbox["unused"] == [
        "engine.target_fps"]
    assert fast["applies"].startswith("target_fps 60 applies") and "factor is not used" in fast["applies"]
    assert fast["unused"] == ["engine.factor"] and fast["engine"]["factor"] == 3   # still shown, marked unused
    assert slow["applies"].startswith("slow motion: factor 4 makes it 4 times longer")
