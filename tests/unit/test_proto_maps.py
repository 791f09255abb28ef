"""A proto map as a plain dict (gateway.proto_maps): the same items as dict(), a dict of its own."""

from __future__ import annotations

from smartpush.gateway.v1 import template_pb2

from gateway.proto_maps import as_dict


def test_a_map_becomes_a_dict_with_the_same_items_that_the_message_does_not_share() -> None:
    content = template_pb2.TemplateContent(id="t", body_values={"a": "1", "b": "", "имя": "Иван"})
    got = as_dict(content.body_values)
    assert type(got) is dict
    assert got == dict(content.body_values) == {"a": "1", "b": "", "имя": "Иван"}
    got["a"] = "changed"
    assert content.body_values["a"] == "1"


def test_an_empty_map_is_a_new_empty_dict() -> None:
    content = template_pb2.TemplateContent(id="t")
    first, second = as_dict(content.header_values), as_dict(content.header_values)
    assert first == {}
    assert type(first) is dict
    first["x"] = "y"
    assert second == {}
    assert "x" not in content.header_values
