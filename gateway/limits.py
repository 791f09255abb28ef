"""Field limits from the SmartPush reference (§2.2, §3.3, §4, §8), in one place."""

from typing import Final

TEMPLATE_ID_MAX: Final = 36
BUTTON_TEXT_MAX: Final = 30
DEEPLINK_MAX: Final = 350
HEADER_VARIABLES_MAX: Final = 3
BODY_VARIABLES_MAX: Final = 10
HEADER_TEXT_MAX: Final = 80
BODY_TEXT_MAX: Final = 480
IDEMPOTENCY_KEY_MAX: Final = 128
CALLBACK_URL_MAX: Final = 2048
PROJECT_ID_MAX: Final = 128
SUB_MAX: Final = 1024
