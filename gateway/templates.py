"""The registry of approved templates: variables, rendering and the checks a send must pass."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from smartpush.gateway.v1 import delivery_pb2, template_pb2, template_service_pb2

from gateway import limits
from gateway.errors import FieldViolation
from gateway.proto_maps import as_dict
from gateway.smartpush.surfaces import SURFACE_TO_WIRE, WIRE_TO_SURFACE

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")
_MOBILE = {
    "button_text": "buttonText",
    "deeplink_android": "deeplinkAndroid",
    "deeplink_ios": "deeplinkIos",
    "android_version": "androidVersion",
    "ios_version": "iosVersion",
    "image_link": "imageLink",
}
_DEVICE = {
    "deeplink": "deeplink",
    "background_image_uri": "backgroundImageUri",
    "device_serial_filters": "deviceSerialFilter",
    "product_filter": "productFilter",
}


def variables(text: str) -> list[str]:
    """Placeholder names in order of first use."""
    return list(dict.fromkeys(_PLACEHOLDER.findall(text)))


def render(text: str, values: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


@dataclass(frozen=True, slots=True)
class Rendered:
    header: str
    body: str
    violations: list[FieldViolation]


class TemplateRegistry:
    def __init__(self, templates: Iterable[template_service_pb2.Template], *, strict: bool = False) -> None:
        self._by_id = {t.id: t for t in templates}
        self.strict = strict

    @classmethod
    def from_settings(cls, entries: Iterable[object], *, strict: bool) -> TemplateRegistry:
        return cls((template_from(e) for e in entries), strict=strict)

    def get(self, template_id: str) -> template_service_pb2.Template | None:
        return self._by_id.get(template_id)

    def all(self) -> list[template_service_pb2.Template]:
        return [self._by_id[k] for k in sorted(self._by_id)]

    def check(
        self,
        template: template_service_pb2.Template,
        content: template_pb2.TemplateContent,
        surfaces: Sequence[int],
        *,
        prefix: str = "delivery.template_content",
        surface_path: str = "delivery.destinations[{i}].surface",
        indices: Sequence[int] | None = None,
    ) -> Rendered:
        """Exact variable sets, surface, rendered lengths and deeplink parameters, each a violation."""
        out: list[FieldViolation] = []
        for kind, wanted in (("header", template.header_variables), ("body", template.body_variables)):
            given = getattr(content, f"{kind}_values")
            for name in wanted:
                if name not in given:
                    out.append(
                        FieldViolation(f'{prefix}.{kind}_values["{name}"]', f"missing: the {kind} uses {{{{{name}}}}}")
                    )
            for name in given:
                if name not in wanted:
                    out.append(
                        FieldViolation(
                            f'{prefix}.{kind}_values["{name}"]', f"not a variable of template {template.id}'s {kind}"
                        )
                    )
        if template.surface:
            for i, surface in enumerate(surfaces):
                if surface != template.surface:
                    out.append(
                        FieldViolation(
                            surface_path.format(i=indices[i] if indices is not None else i),
                            f"template {template.id} is for {SURFACE_TO_WIRE.get(template.surface)}, "
                            f"not {SURFACE_TO_WIRE.get(surface, surface)}",
                        )
                    )
        header = render(template.header, as_dict(content.header_values))
        body = render(template.body, as_dict(content.body_values))
        if len(header) > limits.HEADER_TEXT_MAX:
            out.append(
                FieldViolation(
                    f"{prefix}.header_values",
                    f"rendered header is {len(header)} characters, at most {limits.HEADER_TEXT_MAX}",
                )
            )
        if len(body) > limits.BODY_TEXT_MAX:
            out.append(
                FieldViolation(
                    f"{prefix}.body_values", f"rendered body is {len(body)} characters, at most {limits.BODY_TEXT_MAX}"
                )
            )
        allowed = set(template.deeplink_parameters)
        which = content.WhichOneof("parameters")
        if which is not None:
            params = getattr(content, which)
            names = _MOBILE if which == "mobile_app_parameters" else _DEVICE
            for field, wire in names.items():
                value = getattr(params, field)
                if (len(value) if not isinstance(value, str) else value) and wire not in allowed:
                    out.append(
                        FieldViolation(f"{prefix}.{which}.{field}", f"template {template.id} does not accept {wire}")
                    )
        return Rendered(header, body, out)


def template_from(entry: object) -> template_service_pb2.Template:
    """A Template from a settings entry (`TemplateSettings`)."""
    surface_name = str(getattr(entry, "surface", "") or "")
    header = str(getattr(entry, "header", ""))
    body = str(getattr(entry, "body", ""))
    return template_service_pb2.Template(
        id=str(getattr(entry, "id")),  # noqa: B009 - entry is a settings object of any shape
        name=str(getattr(entry, "name", "")),
        surface=WIRE_TO_SURFACE.get(surface_name.upper(), delivery_pb2.SURFACE_UNSPECIFIED),  # type: ignore[arg-type]
        header=header,
        body=body,
        header_variables=variables(header),
        body_variables=variables(body),
        deeplink_parameters=list(getattr(entry, "deeplink_parameters", [])),
    )
