"""The agents' console in Chromium, signed in: what the browser tests share."""

from playwright.sync_api import Browser, Page, expect

PASSWORD = "clave-segura"


def console(
    browser: Browser,
    url: str,
    username: str,
    *,
    width: int = 1280,
    height: int = 900,
    init_script: str | None = None,
) -> Page:
    """A new browser context signed in as `username` (password PASSWORD) at `url`/agent/, once
    its socket says it is connected."""
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    if init_script:
        page.add_init_script(init_script)
    page.goto(f"{url}/agent/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#connection")).to_have_text("conectado")
    return page
