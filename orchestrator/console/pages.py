"""The console's pages in each language: one Jinja2 environment per language, with its
catalog installed (the `{% trans %}` blocks and `_()` of the templates) and filters
that write amounts, days, times, codes and fee items the way that language does."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from orchestrator.config import Config, OfficeContact
from orchestrator.console.i18n import LANGUAGES, Language
from orchestrator.console.labels import label
from orchestrator.domain.places import Places

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class FeeNames:
    """Fee items by code: (official Chinese name, English name), from the catalogs, the
    latest catalog's name winning."""

    names: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    @classmethod
    def of(cls, config: Config) -> FeeNames:
        names: dict[str, tuple[str, str]] = {}
        for catalog in config.fees.catalogs:  # oldest first
            for item in catalog.items.values():
                names[item.code] = (item.name, item.name_en)
        return cls(names)

    def name(self, language: Language, code: str, recorded: str = "") -> str:
        """A line keeps the Chinese name it was priced with (`recorded`): the receipt's.
        In English the catalog's English name stands in when there is one."""
        chinese, english = self.names.get(code, ("", ""))
        if language.code != "zh_CN" and english:
            return english
        return recorded or chinese or code


@dataclass(frozen=True)
class Office:
    """What the pages need to know of the deployment: fee items, places, whom to call."""

    fees: FeeNames = field(default_factory=FeeNames)
    places: Mapping[str, str] = field(default_factory=dict)  # service point id -> name
    contact: OfficeContact = field(default_factory=OfficeContact)
    # province -> offices -> sites -> service points (None: one office, no hierarchy)
    hierarchy: Places | None = None
    windows: Mapping[str, str] = field(default_factory=dict)  # window id -> service point

    @classmethod
    def of(cls, config: Config) -> Office:
        places = {sp.id: sp.name for sp in config.deployment.service_points}
        d = config.deployment
        return cls(FeeNames.of(config), places, config.office, d.places, d.window_service_point)


class Pages:
    def __init__(self, languages: Mapping[str, Language], office: Office) -> None:
        self.languages = languages
        self.office = office
        self._environments = {code: self._environment(lang) for code, lang in languages.items()}

    def _environment(self, language: Language) -> jinja2.Environment:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            extensions=["jinja2.ext.i18n"],
        )
        env.install_gettext_translations(language.translations, newstyle=True)  # type: ignore[attr-defined]
        env.filters.update(
            money=language.money,
            number=language.number,
            day=language.day,
            when=language.moment,
        )
        env.globals.update(
            language=language,
            languages=LANGUAGES,
            office=self.office,
            label=lambda kind, code: label(language, kind, code),
            fee=lambda code, recorded="": self.office.fees.name(language, code, recorded),
            place=lambda sp: self.office.places.get(sp, sp),
            unit_name=self._unit_name,
        )
        return env

    def _unit_name(self, unit_id: str) -> str:
        """An office's or site's name by its id (the id itself when unknown)."""
        hierarchy = self.office.hierarchy
        if hierarchy is None:
            return unit_id
        office, site = hierarchy.office(unit_id), hierarchy.site(unit_id)
        return office.name if office else site.name if site else unit_id

    def render(self, language: Language, template: str, **context: Any) -> str:
        return self._environments[language.code].get_template(template).render(**context)
