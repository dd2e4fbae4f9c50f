"""Compiling `credential` blocks: how each vault entry travels, checked before any request."""

from __future__ import annotations

import re
from collections.abc import Sequence

from firewall.policy import syntax as s
from firewall.policy.compile_base import Placed, Reporter
from firewall.policy.compiled import CompiledBlock, CredentialSpec
from firewall.policy.errors import Span


class CredentialsCompiler(Reporter):
    def _credentials(self, nodes: list[s.Credential]) -> dict[str, CredentialSpec]:
        specs: dict[str, CredentialSpec] = {}
        named = self.once_each(
            nodes, lambda node: (node.name.text, node.name.span), 'credential "{name}" is defined twice'
        )
        for name, node in named:
            spec = self._credential(node)
            if spec is not None:
                specs[name] = spec
        return specs

    def _exactly_one(self, node: s.Credential, lines: Sequence[Placed], what: str, hint: str) -> bool:
        """Whether the block has exactly one of these lines; if not, an error at the second (or at
        the block's name, for none)."""
        if len(lines) == 1:
            return True
        span = lines[1].span if lines else node.name.span
        self.error(f'credential "{node.name.text}" needs exactly one {what}', span, hint)
        return False

    def _credential(self, node: s.Credential) -> CredentialSpec | None:
        secrets = [x for x in node.lines if isinstance(x, s.SecretLine)]
        carriers = [x for x in node.lines if isinstance(x, (s.HeaderLine, s.QueryLine, s.OAuthLine))]
        settings = [x for x in node.lines if isinstance(x, s.OAuthSetting)]
        name = node.name.text
        ok = self._exactly_one(node, secrets, "secret line", f'name its vault entry: secret "{name}"')
        example = 'for example: header Authorization = "Bearer {secret}"'
        if not self._exactly_one(node, carriers, "of header, query or oauth", example):
            return None
        carrier = carriers[0]
        if settings and not isinstance(carrier, s.OAuthLine):
            self.error(f'"{settings[0].key}" only applies to an oauth credential', settings[0].span)
            ok = False
        seen_keys: set[str] = set()
        for setting in settings:
            if setting.key in seen_keys:
                self.error(f'"{setting.key}" is set twice in credential "{name}"', setting.span)
                ok = False
            seen_keys.add(setting.key)
            if setting.key == "token_url" and not str(setting.value.value).startswith("https://"):
                self.error("token_url must be an https:// URL", setting.value.span)
                ok = False
        if isinstance(carrier, s.OAuthLine):
            kind, target, template = "oauth", "", ""
        else:
            kind = "header" if isinstance(carrier, s.HeaderLine) else "query"
            target_word = carrier.header if isinstance(carrier, s.HeaderLine) else carrier.parameter
            target = target_word.text.lower() if kind == "header" else target_word.text
            template = carrier.template.value
            ok = self._check_template(template, carrier.template.span) and ok
            if kind == "header" and target in ("host", "content-length", "transfer-encoding", "connection"):
                self.error(f'header "{target_word.text}" cannot carry a credential', target_word.span)
                ok = False
        if not ok:
            return None
        return CredentialSpec(
            name=name,
            secret=secrets[0].entry.value,
            kind=kind,
            target=target,
            template=template,
            settings=tuple(sorted((x.key, str(x.value.value)) for x in settings)),
            source=self.ref(node.span),
        )

    def _check_template(self, template: str, span: Span) -> bool:
        placeholders = re.findall(r"\{[^}]*\}", template)
        if placeholders.count("{secret}") != 1 or len(placeholders) != 1:
            self.error(
                "a credential template must contain {secret} exactly once and no other {…}",
                span,
                'for example: "Bearer {secret}"',
            )
            return False
        return True

    def _warn_unused_credentials(self, credentials: dict[str, CredentialSpec], blocks: list[CompiledBlock]) -> None:
        used = {inject.credential for block in blocks for inject in block.injects}
        for node in (x for f in self.files for x in f.statements if isinstance(x, s.Credential)):
            if node.name.text not in used and node.name.text in credentials:
                self.warn(
                    f'credential "{node.name.text}" is not injected by any host block',
                    node.name.span,
                    f"add `inject {node.name.text}` to the host block that needs it, or remove it",
                )
