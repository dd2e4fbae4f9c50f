"""OAuth logins (Codex's ChatGPT login): reading them, refreshing them, and the placeholders agents get.

No mitmproxy here: the proxy's side lives in `firewall/proxy/oauth.py`.
"""

from firewall.oauth.login import InvalidLogin, Login, login_secrets, parse_login
from firewall.oauth.settings import OAuthSettings

__all__ = ["InvalidLogin", "Login", "OAuthSettings", "login_secrets", "parse_login"]
