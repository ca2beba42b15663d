"""Spiders: `christies` (sales → lot records) and `christies_images` (a list of lots → image files)."""

from __future__ import annotations

from scrapy.settings import SETTINGS_PRIORITIES, BaseSettings

USER_AGENT_TEMPLATE = "christies-dcec-research/0.1 (+{contact})"


def apply_contact_user_agent(settings: BaseSettings) -> None:
    """Build the User-Agent from `CHRISTIES_CONTACT` unless USER_AGENT itself was set on the command line."""
    if (settings.getpriority("USER_AGENT") or 0) >= SETTINGS_PRIORITIES["cmdline"]:
        return
    contact = settings.get("CHRISTIES_CONTACT")
    if contact:
        settings.set("USER_AGENT", USER_AGENT_TEMPLATE.format(contact=contact), priority="spider")
