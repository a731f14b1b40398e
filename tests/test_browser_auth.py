"""Sign-in end to end: `streamlit run app.py` with an ``[auth]`` secrets file against a local
OpenID Connect provider (oidc-provider-mock, in a thread), two users in two browsers.

Alice and Bob each own one run (copies of the session's tiny run; Bob's is newer). Alice
sees hers under "Mine" and both under "The team's", renames hers (shown at once), cannot
rename or delete Bob's, and Predict starts on her run, not the newest; Bob cannot open
Alice's workspace from its address; signing out shows the sign-in screen again.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import replace

import pytest
from browser_helpers import app_server, browser, chromium_path, free_port, no_exception, settle

from soartlab.runs import Run

pytestmark = pytest.mark.browser
__all__ = ["browser"]  # fixture, used by name

ALICE, BOB = "alice@example.com", "bob@example.com"


def owned_run(tiny_run, home, owner: str, label: str) -> str:
    """A copy of the tiny run owned by ``owner``. Both copies keep the tiny run's creation
    time (its weights' header must agree), so the list orders them by id: Bob's first."""
    run_id = f"20260101-120000-{owner[0] * 6}"
    folder = shutil.copytree(tiny_run.run.path, home / run_id)
    Run(folder).write_record(replace(Run(folder).read_record(), owner=owner, label=label))
    return run_id


@pytest.fixture(scope="module")
def signed_in_server(tiny_run, tmp_path_factory):
    from oidc_provider_mock import User, run_server_in_thread

    if chromium_path() is None:
        pytest.skip("Debian chromium is not installed")
    home = tmp_path_factory.mktemp("soartlab-auth-home")
    # Bob's run is listed first (newest): "my latest" must not be "the newest".
    alice_run = owned_run(tiny_run, home, ALICE, "alice's run")
    bob_run = owned_run(tiny_run, home, BOB, "bob's run")
    users = [User(sub="alice", claims={"email": ALICE}), User(sub="bob", claims={"email": BOB})]
    with run_server_in_thread(user_claims=users) as provider:
        port = free_port()
        secrets = home / "secrets.toml"
        secrets.write_text(
            "[auth]\n"
            f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
            'cookie_secret = "a-test-secret-of-enough-length-0123456789"\n'
            'client_id = "soartlab"\n'
            'client_secret = "soartlab-secret"\n'
            f'server_metadata_url = "http://localhost:{provider.server_port}'
            '/.well-known/openid-configuration"\n'
            "\n[soartlab]\nadmins = []\n"
        )
        with app_server(home, port=port, secrets=secrets) as url:
            yield url, {"alice": alice_run, "bob": bob_run}


def sign_in(browser, url: str, who: str):
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(url)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name=who, exact=True).click()  # the provider's user list
    expect(page.locator('[data-testid="stSidebar"]')).to_contain_text(
        f"Signed in as {who}@example.com", timeout=60_000
    )
    settle(page)
    return context, page


def runs_listed(page) -> str:
    """The runs the Runs page offers (its "Run" choice; the table is drawn on a canvas)."""
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Run").first.click()
    options = page.get_by_role("option")
    options.first.wait_for(timeout=30_000)
    text = " | ".join(options.all_inner_texts())
    page.keyboard.press("Escape")
    return text


def choose_run(page, label: str) -> None:
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Run").first.click()
    page.get_by_role("option", name=re.compile(re.escape(label))).click()
    settle(page)


def test_two_signed_in_users_cannot_touch_each_others_runs(signed_in_server, browser):
    from playwright.sync_api import expect

    url, runs = signed_in_server
    # Nobody gets past the sign-in screen.
    anonymous = browser.new_context()
    page = anonymous.new_page()
    page.goto(f"{url}/runs")
    page.get_by_role("button", name="Sign in").wait_for(timeout=60_000)
    assert page.locator('[data-testid="stDataFrame"]').count() == 0
    anonymous.close()

    alice, page = sign_in(browser, url, "alice")
    try:
        page.goto(f"{url}/runs?ws={re.search(r'ws=([^&]+)', page.url).group(1)}")
        settle(page)
        mine = runs_listed(page)
        assert runs["alice"] in mine and runs["bob"] not in mine
        page.locator('[data-testid="stButtonGroup"]').get_by_text("The team's").click()
        settle(page)
        team = runs_listed(page)
        assert runs["alice"] in team and runs["bob"] in team
        # Bob's run: look, but no rename or delete.
        choose_run(page, "bob's run")
        expect(
            page.get_by_text("only its owner or an admin can rename or delete it")
        ).to_be_visible()
        assert page.get_by_role("button", name="Rename").is_disabled()
        assert page.get_by_role("button", name="Delete").is_disabled()
        # Her own run: a rename shows at once.
        choose_run(page, "alice's run")
        field = page.get_by_label("New name (a label only)")
        field.fill("alice's checked run")
        field.press("Tab")
        page.get_by_role("button", name="Rename").click()
        expect(page.get_by_text("Renamed.")).to_be_visible(timeout=30_000)
        assert "alice's checked run" in runs_listed(page)
        no_exception(page, "runs")
        alice_ws = re.search(r"ws=([A-Za-z0-9_-]{16})", page.url).group(1)

        # Predict starts on her latest run, not on Bob's newer one.
        page.locator('[data-testid="stSidebarNav"]').get_by_text("Predict", exact=True).click()
        settle(page)
        chosen = page.locator('[data-testid="stSelectbox"]').filter(has_text="Run").first
        expect(chosen.locator("input")).to_have_value(
            re.compile("^alice's checked run"), timeout=30_000
        )

        bob, bob_page = sign_in(browser, url, "bob")
        try:
            bob_page.goto(f"{url}/runs?ws={alice_ws}")
            expect(bob_page.get_by_text("belongs to another user")).to_be_visible(timeout=60_000)
            settle(bob_page)
            assert alice_ws not in bob_page.url
            assert runs["alice"] not in runs_listed(bob_page)  # "Mine": his only
            no_exception(bob_page, "bob's runs")
        finally:
            bob.close()

        page.get_by_role("button", name="Sign out").click()
        # Streamlit ends the session at the provider too; the provider asks to confirm.
        page.get_by_role("button", name="End session").click(timeout=60_000)
        page.get_by_role("button", name="Sign in").wait_for(timeout=60_000)
        page.goto(f"{url}/runs?ws={alice_ws}")
        page.get_by_role("button", name="Sign in").wait_for(timeout=60_000)
    finally:
        alice.close()
