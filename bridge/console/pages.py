"""The two HTML pages: the login page (rendered here, the only thing served before login) and
the main page (``static/index.html``, given its session's CSRF token in a ``<meta>`` tag).

The login page needs no script; its style carries the response's CSP nonce. Every string comes
from :mod:`bridge.console.i18n` and every value put into the HTML is escaped.
"""

from __future__ import annotations

from html import escape

from bridge.console.i18n import LANGS, STATIC, strings

__all__ = ["login_page", "main_page"]

LOGIN_STYLE = """
body{font-family:system-ui,sans-serif;background:#102030;color:#f0f0f0;display:flex;
justify-content:center;align-items:center;min-height:100vh;margin:0}
form{background:#1c3248;padding:2rem;border-radius:8px;min-width:18rem}
label{display:block;margin-top:1rem}input,select,button{font-size:1rem;padding:.4rem;width:100%;
box-sizing:border-box}button{margin-top:1.5rem;background:#3a7bd5;color:#fff;border:0}
:focus{outline:3px solid #ffbf00;outline-offset:2px}.error{color:#ff9a9a;margin-top:1rem}
nav{margin-bottom:1rem}nav a{color:#9cf;margin-right:.8rem}
"""


def login_page(lang: str, login_token: str, nonce: str, message_key: str | None) -> str:
    s = strings(lang)
    links = []
    for code in LANGS:
        current = ' aria-current="true"' if code == lang else ""
        name = escape(strings(code)["lang.name"])
        links.append(f'<a href="/login?lang={code}" lang="{code}"{current}>{name}</a>')
    langs = " ".join(links)
    message = ""
    if message_key is not None:
        message = f'<p class="error" role="alert" id="login-error">{escape(s[message_key])}</p>'
    return f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(s["app.title"])}: {escape(s["login.title"])}</title>
<style nonce="{nonce}">{LOGIN_STYLE}</style></head>
<body><main><form method="post" action="/login">
<nav aria-label="{escape(s["lang.label"])}">{langs}</nav>
<h1>{escape(s["login.title"])}</h1>
<input type="hidden" name="login_token" value="{escape(login_token)}">
<input type="hidden" name="lang" value="{lang}">
<label for="user">{escape(s["login.user"])}</label>
<input id="user" name="user" autocomplete="username" required autofocus>
<label for="password">{escape(s["login.password"])}</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
{message}
<button type="submit" id="login-submit">{escape(s["login.submit"])}</button>
</form></main></body></html>
"""


def main_page(csrf: str, user: str, lang: str) -> str:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    return (
        html.replace("{{csrf}}", escape(csrf))
        .replace("{{user}}", escape(user))
        .replace("{{lang}}", escape(lang))
    )
