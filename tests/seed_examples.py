"""Every JSON example of the three seeds (shared/seeds 000, 002, 004), as the wire shows them."""

from __future__ import annotations

from typing import Any

# 000: the TAKE_RUNTIME_PERMISSIONS answer of `$smartPush.getRuntimePermissions()`.
TAKE_RUNTIME_PERMISSIONS: dict[str, Any] = {
    "messageId": "1605196199186625000",
    "sessionId": "0062530b-5521-42cc-90b0-a9d65dea4e98",
    "messageName": "TAKE_RUNTIME_PERMISSIONS",
    "payload": {"permitted_actions": ["service_push"], "status_code": {"code": 1, "description": "success"}},
    "uuid": {"userId": "ec8a9097-1508-4bec-8d97-67f2329c03e0", "userChannel": "B2C"},
}

# 004: actions.
TEXT: dict[str, Any] = {"type": "text", "text": "Текст", "should_send_to_backend": True}
DEEP_LINK: dict[str, Any] = {"type": "deep_link", "deep_link": "example://app/profile"}
SERVER_ACTION: dict[str, Any] = {"type": "server_action", "message_name": "SERVER_ACTION", "server_action": {}}
RUN_APP: dict[str, Any] = {
    "type": "server_action",
    "message_name": "RUN_APP",
    "server_action": {
        "action_id": "run_app",
        "app_info": {"projectId": "example_456", "applicationId": "app_456_ios", "appversionId": "app_version_456"},
        "payload": {"example_usefull_field": "example_456", "example_text": "Привет"},
    },
}
ACTIONS: dict[str, dict[str, Any]] = {
    "text": TEXT,
    "text_default_backend": {"type": "text", "text": "Текст"},
    "deep_link": DEEP_LINK,
    "server_action": SERVER_ACTION,
    "server_action_default_name": {"type": "server_action", "server_action": {"action_id": "BUY", "count": 2}},
    "run_app": RUN_APP,
}
PAY_DIALOG_FINISHED: dict[str, Any] = {
    "payload": {
        "server_action": {
            "action_id": "PAY_DIALOG_FINISHED",
            "parameters": {
                "payment_response": {"response_code": 0, "invoice_id": "***ID****"},
                "app_info": {"projectId": "**", "systemName": "**"},
            },
        }
    }
}

# 002: commands in ANSWER_TO_USER.payload.items.
COMMANDS: dict[str, dict[str, Any]] = {
    "action_text": {"type": "action", "action": TEXT},
    "action_deep_link": {"type": "action", "action": DEEP_LINK},
    "action_server_action": {"type": "action", "action": RUN_APP},
    "request_permissions": {
        "type": "request_permissions",
        "permissions": ["geo", "read_contacts", "record_audio", "push"],
    },
    "smart_app_data": {"type": "smart_app_data", "smart_app_data": {}},
    "smart_app_data_full": {"type": "smart_app_data", "smart_app_data": {"screen": "cart", "items": [1, 2.5, "x"]}},
    "close_app": {"type": "close_app"},
    "payment_invoice": {"type": "payment_invoice", "payment_invoice": {}},
    "do_nothing": {"type": "do_nothing"},
}
