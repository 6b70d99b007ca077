"""Policy documents: loading TOML, JSON, YAML and dicts, and every refusal naming where."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from securecustomer.exceptions import PolicyError
from securecustomer.policy import Policy, Rule, parse_duration
from securecustomer.policy._expr import parse

TOML = """\
version = 1
description = "customer data"

[roles.agent]
description = "first-line support"

[roles.senior]
inherits = ["agent"]

[[rules]]
id = "agents-read"
effect = "allow"
roles = ["agent"]
actions = ["read"]
resources = ["customer"]
fields = ["name", "email"]
masks = { email = "email" }
when = "resource.region == subject.region"
purposes = ["support"]
tenants = ["acme"]

[[rules]]
effect = "deny"
roles = ["*"]
actions = ["*"]
resources = ["customer"]
fields = ["ssn"]

[[rules]]
id = "seniors-export"
effect = "allow"
roles = ["senior"]
actions = ["export"]
resources = ["customer"]
mfa_max_age = "15m"
"""

DOCUMENT: dict[str, Any] = {
    "version": 1,
    "description": "customer data",
    "roles": {
        "agent": {"description": "first-line support"},
        "senior": {"inherits": ["agent"]},
    },
    "rules": [
        {
            "id": "agents-read",
            "effect": "allow",
            "roles": ["agent"],
            "actions": ["read"],
            "resources": ["customer"],
            "fields": ["name", "email"],
            "masks": {"email": "email"},
            "when": "resource.region == subject.region",
            "purposes": ["support"],
            "tenants": ["acme"],
        },
        {
            "effect": "deny",
            "roles": ["*"],
            "actions": ["*"],
            "resources": ["customer"],
            "fields": ["ssn"],
        },
        {
            "id": "seniors-export",
            "effect": "allow",
            "roles": ["senior"],
            "actions": ["export"],
            "resources": ["customer"],
            "mfa_max_age": "15m",
        },
    ],
}

YAML = """\
version: 1
description: customer data
roles:
  agent:
    description: first-line support
  senior:
    inherits: [agent]
rules:
  - id: agents-read
    effect: allow
    roles: [agent]
    actions: [read]
    resources: [customer]
    fields: [name, email]
    masks: {email: email}
    when: resource.region == subject.region
    purposes: [support]
    tenants: [acme]
  - effect: deny
    roles: ["*"]
    actions: ["*"]
    resources: [customer]
    fields: [ssn]
  - id: seniors-export
    effect: allow
    roles: [senior]
    actions: [export]
    resources: [customer]
    mfa_max_age: 15m
"""


def content(policy: Policy) -> tuple[object, ...]:
    """Everything but the source, to compare policies loaded from different places."""
    return (dict(policy.roles), policy.rules, policy.exclusive)


def minimal(**rule: Any) -> dict[str, Any]:
    """A valid one-rule document; keyword arguments replace or add rule keys."""
    base: dict[str, Any] = {
        "id": "r1",
        "effect": "allow",
        "roles": ["agent"],
        "actions": ["read"],
        "resources": ["customer"],
    }
    base.update(rule)
    return {"version": 1, "roles": {"agent": {}}, "rules": [base]}


def without(key: str) -> dict[str, Any]:
    document = minimal()
    del document["rules"][0][key]
    return document


def chain(length: int) -> dict[str, Any]:
    """Roles r0 inherits r1 inherits ... r{length}."""
    roles: dict[str, Any] = {f"r{i}": {"inherits": [f"r{i + 1}"]} for i in range(length)}
    roles[f"r{length}"] = {}
    return {"version": 1, "roles": roles}


class TestLoadFormats:
    """TOML, JSON, YAML and dicts, as text or files, load into the same Policy."""

    def test_toml_text(self) -> None:
        policy = Policy.from_toml(TOML)
        assert None is policy.source
        assert ("agents-read", "rules[1]", "seniors-export") == tuple(r.id for r in policy.rules)

    def test_toml_text_and_dict_agree(self) -> None:
        assert content(Policy.from_dict(DOCUMENT)) == content(Policy.from_toml(TOML))

    def test_toml_file_as_str_and_path(self, tmp_path: Path) -> None:
        path = tmp_path / "policy.toml"
        path.write_text(TOML, encoding="utf-8")
        from_path = Policy.from_toml(path)
        from_str = Policy.from_toml(str(path))
        assert str(path) == from_path.source == from_str.source
        assert content(Policy.from_dict(DOCUMENT)) == content(from_path) == content(from_str)

    def test_json_text_and_file(self, tmp_path: Path) -> None:
        text = json.dumps(DOCUMENT, indent=2)
        path = tmp_path / "policy.json"
        path.write_text(text, encoding="utf-8")
        from_text = Policy.from_json("\n  " + text)
        from_file = Policy.from_json(path)
        assert None is from_text.source
        assert str(path) == from_file.source
        assert content(Policy.from_dict(DOCUMENT)) == content(from_text) == content(from_file)

    def test_yaml_text_and_file(self, tmp_path: Path) -> None:
        path = tmp_path / "policy.yaml"
        path.write_text(YAML, encoding="utf-8")
        from_text = Policy.from_yaml(YAML)
        from_file = Policy.from_yaml(path)
        assert None is from_text.source
        assert str(path) == from_file.source
        assert content(Policy.from_dict(DOCUMENT)) == content(from_text) == content(from_file)

    def test_dict_keeps_given_source(self) -> None:
        assert "inline" == Policy.from_dict(DOCUMENT, source="inline").source

    @pytest.mark.parametrize(
        ("name", "text"),
        [
            ("policy.toml", TOML),
            ("POLICY.TOML", TOML),
            ("policy.json", json.dumps(DOCUMENT)),
            ("policy.yaml", YAML),
            ("policy.yml", YAML),
        ],
    )
    def test_from_file_by_suffix(self, tmp_path: Path, name: str, text: str) -> None:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        policy = Policy.from_file(path)
        assert str(path) == policy.source
        assert content(Policy.from_dict(DOCUMENT)) == content(policy)

    def test_from_file_unknown_suffix(self, tmp_path: Path) -> None:
        path = tmp_path / "policy.ini"
        path.write_text(TOML, encoding="utf-8")
        with pytest.raises(PolicyError, match="cannot tell the format") as info:
            Policy.from_file(path)
        assert str(path) == info.value.source

    def test_missing_file(self, tmp_path: Path) -> None:
        path = tmp_path / "absent.toml"
        with pytest.raises(PolicyError, match="no such file") as info:
            Policy.from_file(path)
        assert str(path) == info.value.source
        assert str(info.value).startswith(str(path))

    def test_undecodable_file(self, tmp_path: Path) -> None:
        path = tmp_path / "policy.toml"
        path.write_bytes(b'version = 1\ndescription = "\xff\xfe"\n')
        with pytest.raises(PolicyError, match="cannot read the file") as info:
            Policy.from_toml(path)
        assert str(path) == info.value.source

    def test_policies_compare_by_content(self) -> None:
        assert Policy.from_toml(TOML) == Policy.from_dict(DOCUMENT)
        changed = json.loads(json.dumps(DOCUMENT))
        changed["rules"][0]["when"] = "resource.region != subject.region"
        assert Policy.from_dict(DOCUMENT) != Policy.from_dict(changed)

    def test_conditions_differing_only_in_kind_are_different_policies(self) -> None:
        one = Policy.from_dict(minimal(when="resource.level == 1"))
        true = Policy.from_dict(minimal(when="resource.level == true"))
        assert one != true


class TestParsedRules:
    """What each rule key becomes on the validated `Rule`."""

    def test_full_rule(self) -> None:
        rule = Policy.from_toml(TOML).rules[0]
        expected = Rule(
            id="agents-read",
            index=0,
            effect="allow",
            roles=frozenset({"agent"}),
            subjects=frozenset(),
            actions=frozenset({"read"}),
            resources=frozenset({"customer"}),
            tenants=frozenset({"acme"}),
            fields=frozenset({"name", "email"}),
            masks={"email": "email"},
            when=parse("resource.region == subject.region"),
            mfa_max_age=None,
            purposes=frozenset({"support"}),
        )
        assert expected == rule
        assert rule.allow
        assert "resource.region == subject.region" == rule.condition

    def test_defaults_and_wildcards(self) -> None:
        rule = Policy.from_toml(TOML).rules[1]
        assert "rules[1]" == rule.id
        assert 1 == rule.index
        assert not rule.allow
        assert frozenset({"*"}) == rule.roles
        assert None is rule.actions
        assert frozenset({"customer"}) == rule.resources
        assert None is rule.tenants
        assert None is rule.purposes
        assert None is rule.when
        assert None is rule.condition
        assert {} == rule.masks

    def test_mfa_max_age(self) -> None:
        assert timedelta(minutes=15) == Policy.from_toml(TOML).rules[2].mfa_max_age

    def test_subjects_without_roles(self) -> None:
        document = minimal(subjects=["user-1", "user-2"])
        del document["rules"][0]["roles"]
        rule = Policy.from_dict(document).rules[0]
        assert frozenset({"user-1", "user-2"}) == rule.subjects
        assert frozenset() == rule.roles

    def test_condition_is_canonical(self) -> None:
        rule = Policy.from_dict(minimal(when="not resource.a==1 or(context.b)")).rules[0]
        assert "(not (resource.a == 1)) or (context.b)" == rule.condition

    def test_masks_without_fields(self) -> None:
        rule = Policy.from_dict(minimal(masks={"ssn": "last4"})).rules[0]
        assert None is rule.fields
        assert {"ssn": "last4"} == rule.masks

    def test_roles_may_be_null_in_yaml(self) -> None:
        policy = Policy.from_yaml("version: 1\nroles:\n  agent:\n  admin: {}\n")
        assert {"agent": (), "admin": ()} == dict(policy.roles)

    def test_exclusive_groups(self) -> None:
        document = minimal()
        document["roles"] = {"agent": {}, "approver": {}, "requester": {}}
        document["constraints"] = {"exclusive": [["approver", "requester"]]}
        policy = Policy.from_dict(document)
        assert (frozenset({"approver", "requester"}),) == policy.exclusive

    def test_empty_document_with_version(self) -> None:
        policy = Policy.from_toml("version = 1")
        assert ((), {}, ()) == (policy.rules, dict(policy.roles), policy.exclusive)


def _cycle(*pairs: tuple[str, str]) -> dict[str, Any]:
    roles: dict[str, Any] = {}
    for child, parent in pairs:
        roles.setdefault(child, {"inherits": []})["inherits"].append(parent)
        roles.setdefault(parent, {"inherits": []})
    return {"version": 1, "roles": roles}


def _document(**top: Any) -> dict[str, Any]:
    document = minimal()
    document.update(top)
    return document


def _with_roles(roles: dict[str, Any], exclusive: list[Any]) -> dict[str, Any]:
    document = minimal()
    document["roles"] = roles
    document["constraints"] = {"exclusive": exclusive}
    return document


def _anonymous(**rule: Any) -> dict[str, Any]:
    document = minimal(**rule)
    del document["rules"][0]["id"]
    return document


def _two_rules(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    document = minimal(**first)
    document["rules"].append({**minimal()["rules"][0], **second})
    return document


# (document, rule, field, fragment of the message)
REFUSALS: list[tuple[str, object, str | None, str | None, str]] = [
    ("top-level unknown key", _document(rule=[]), None, "rule", "unknown key 'rule'"),
    (
        "role unknown key",
        _document(roles={"agent": {"inherit": ["x"]}}),
        None,
        "roles.agent.inherit",
        "unknown key 'inherit'",
    ),
    ("misspelt field", minimal(field=["name"]), "r1", "field", "unknown key 'field'"),
    (
        "unknown key in a rule without id",
        _anonymous(feilds=["name"]),
        "rules[0]",
        "feilds",
        "unknown key 'feilds'",
    ),
    ("version 2", _document(version=2), None, "version", "must be 1"),
    ("no version", {"rules": []}, None, "version", "must be 1"),
    ("version true", _document(version=True), None, "version", "must be 1"),
    ("version string", _document(version="1"), None, "version", "must be 1"),
    ("bad effect", minimal(effect="permit"), "r1", "effect", "must be 'allow' or 'deny'"),
    ("no effect", without("effect"), "r1", "effect", "not None"),
    ("no actions", without("actions"), "r1", "actions", "is required"),
    ("no resources", without("resources"), "r1", "resources", "is required"),
    ("no roles nor subjects", without("roles"), "r1", "roles", "needs roles or subjects"),
    ("empty actions", minimal(actions=[]), "r1", "actions", "must not be empty"),
    ("empty roles", minimal(roles=[]), "r1", "roles", "must not be empty"),
    ("empty fields", minimal(fields=[]), "r1", "fields", "must not be empty"),
    ("star mixed", minimal(actions=["*", "read"]), "r1", "actions", "already means any"),
    ("star in fields", minimal(fields=["*"]), "r1", "fields", "'*' is not allowed here"),
    ("star in subjects", minimal(subjects=["*"]), "r1", "subjects", "'*' is not allowed"),
    ("star in tenants", minimal(tenants=["*"]), "r1", "tenants", "'*' is not allowed"),
    ("a string not a list", minimal(actions="read"), "r1", "actions", "list of strings"),
    ("an empty name", minimal(resources=["customer", " "]), "r1", "resources", "non-empty"),
    ("a number as name", minimal(purposes=[1]), "r1", "purposes", "non-empty strings"),
    ("id not a string", minimal(id=7), "rules[0]", "id", "non-empty string"),
    ("blank id", minimal(id=" "), "rules[0]", "id", "non-empty string"),
    ("duplicate ids", _two_rules({}, {}), "r1", "id", "duplicate rule id"),
    ("mask on deny", minimal(effect="deny", masks={"ssn": "redact"}), "r1", "masks", "deny"),
    (
        "mask on an unlisted field",
        minimal(fields=["name"], masks={"email": "email"}),
        "r1",
        "masks",
        "masks field 'email', which the rule does not list",
    ),
    ("masks not a table", minimal(masks=["email"]), "r1", "masks", "field = mask name"),
    ("unmask on deny", minimal(effect="deny", unmask=["ssn"]), "r1", "unmask", "deny"),
    (
        "unmask of an unlisted field",
        minimal(fields=["name"], unmask=["ssn"]),
        "r1",
        "unmask",
        "unmasks field 'ssn', which the rule does not list",
    ),
    (
        "mask and unmask",
        minimal(masks={"ssn": "last4"}, unmask=["ssn"]),
        "r1",
        "unmask",
        "both masks and unmasks field 'ssn'",
    ),
    ("unmask a string", minimal(unmask="ssn"), "r1", "unmask", "list of strings"),
    ("unmask star", minimal(unmask=["*"]), "r1", "unmask", "'*' is not allowed"),
    ("empty mask name", minimal(masks={"email": ""}), "r1", "masks", "field = mask name"),
    ("when not a string", minimal(when=True), "r1", "when", "must be a string"),
    ("when bad syntax", minimal(when="resource.a = 1"), "r1", "when", "column 12"),
    ("when unknown name", minimal(when="user.id == 1"), "r1", "when", "unknown name 'user'"),
    ("when empty", minimal(when=""), "r1", "when", "column 1"),
    ("when dangling and", minimal(when="resource.a and"), "r1", "when", "column 15"),
    ("mfa bad duration", minimal(mfa_max_age="15 minutes"), "r1", "mfa_max_age", "not a dur"),
    ("mfa zero", minimal(mfa_max_age=0), "r1", "mfa_max_age", "must be positive"),
    ("mfa negative", minimal(mfa_max_age=-60), "r1", "mfa_max_age", "must be positive"),
    ("mfa bool", minimal(mfa_max_age=True), "r1", "mfa_max_age", "duration"),
    ("mfa on deny", minimal(effect="deny", mfa_max_age="5m"), "r1", "mfa_max_age", "allow"),
    ("description not str", minimal(description=3), "r1", "description", "must be a string"),
    ("rule not a table", _document(rules=["r1"]), "rules[0]", None, "must be a table"),
    ("rules not a list", _document(rules={"r1": {}}), None, "rules", "list of tables"),
    ("roles not a table", _document(roles=["agent"]), None, "roles", "table of roles"),
    ("role not a table", _document(roles={"agent": "x"}), None, "roles.agent", "a table"),
    (
        "inherits undeclared",
        _document(roles={"agent": {}, "senior": {"inherits": ["agnet"]}}),
        None,
        "roles.senior.inherits",
        "inherits undeclared role 'agnet'",
    ),
    (
        "inherits a string",
        _document(roles={"agent": {}, "senior": {"inherits": "agent"}}),
        None,
        "roles.senior.inherits",
        "list of strings",
    ),
    ("two-role cycle", _cycle(("a", "b"), ("b", "a")), None, "roles", "a -> b -> a"),
    ("self cycle", _cycle(("a", "a")), None, "roles", "cycle: a -> a"),
    (
        "cycle behind a prefix",
        _cycle(("top", "a"), ("a", "b"), ("b", "c"), ("c", "a")),
        None,
        "roles",
        "cycle: a -> b -> c -> a",
    ),
    (
        "exclusive undeclared",
        _with_roles({"agent": {}, "approver": {}}, [["approver", "requester"]]),
        None,
        "constraints.exclusive[0]",
        "undeclared role 'requester'",
    ),
    (
        "role inherits two exclusive roles",
        _with_roles(
            {"a": {}, "b": {}, "agent": {}, "boss": {"inherits": ["a", "b"]}}, [["a", "b"]]
        ),
        None,
        "constraints.exclusive[0]",
        "role 'boss' inherits mutually exclusive roles 'a' and 'b'",
    ),
    (
        "exclusive role inheriting its rival",
        _with_roles({"a": {}, "b": {"inherits": ["a"]}, "agent": {}}, [["a", "b"]]),
        None,
        "constraints.exclusive[0]",
        "role 'b' inherits mutually exclusive roles 'a' and 'b'",
    ),
    (
        "exclusive of one role",
        _with_roles({"agent": {}, "a": {}}, [["a", "a"]]),
        None,
        "constraints.exclusive[0]",
        "at least two roles",
    ),
    (
        "exclusive not a list",
        _with_roles({"agent": {}}, "agent"),  # type: ignore[arg-type]
        None,
        "constraints.exclusive",
        "list of lists",
    ),
    (
        "constraints unknown key",
        _document(constraints={"exclusives": []}),
        None,
        "constraints.exclusives",
        "unknown key 'exclusives'",
    ),
    ("constraints not a table", _document(constraints=[]), None, "constraints", "a table"),
    ("not a table", ["version", 1], None, None, "a table at the top level"),
]


class TestRefusals:
    """Every problem is a PolicyError naming the source, the rule and the field."""

    @pytest.mark.parametrize(
        ("document", "rule", "field", "fragment"),
        [case[1:] for case in REFUSALS],
        ids=[case[0] for case in REFUSALS],
    )
    def test_refused(
        self, document: object, rule: str | None, field: str | None, fragment: str
    ) -> None:
        with pytest.raises(PolicyError) as info:
            Policy.from_dict(document, source="policies/main.toml")  # type: ignore[arg-type]
        error = info.value
        assert ("policies/main.toml", rule, field) == (error.source, error.rule, error.field)
        message = str(error)
        assert fragment in message
        assert message.startswith("policies/main.toml: ")
        if rule is not None:
            assert f"rule {rule!r}" in message
        if field is not None:
            assert f"field {field!r}" in message

    def test_is_a_value_error(self) -> None:
        with pytest.raises(ValueError, match="must be 1"):
            Policy.from_dict({"version": 0})

    def test_duplicate_id_names_both_positions(self) -> None:
        document = _two_rules({}, {})
        document["rules"].insert(1, {**minimal()["rules"][0], "id": "r2"})
        with pytest.raises(PolicyError, match=r"this is rules\[2\]"):
            Policy.from_dict(document)

    def test_rule_without_id_named_by_position(self) -> None:
        document = _two_rules({}, {"id": "r2", "effect": "maybe"})
        del document["rules"][1]["id"]
        with pytest.raises(PolicyError) as info:
            Policy.from_dict(document)
        assert ("rules[1]", "effect") == (info.value.rule, info.value.field)

    def test_file_names_in_errors(self, tmp_path: Path) -> None:
        path = tmp_path / "policy.toml"
        path.write_text(TOML.replace('fields = ["ssn"]', 'field = ["ssn"]'), encoding="utf-8")
        with pytest.raises(PolicyError) as info:
            Policy.from_toml(path)
        assert (str(path), "rules[1]", "field") == (
            info.value.source,
            info.value.rule,
            info.value.field,
        )
        assert str(info.value).startswith(f"{path}: rule 'rules[1]': field 'field': ")

    def test_condition_error_gives_the_column(self) -> None:
        with pytest.raises(PolicyError, match="unexpected character '@' at column 15"):
            Policy.from_dict(minimal(when="resource.a == @"))

    def test_deep_cycle_shows_its_path(self) -> None:
        document = chain(50)
        document["roles"]["r50"] = {"inherits": ["r0"]}
        with pytest.raises(PolicyError) as info:
            Policy.from_dict(document)
        expected = " -> ".join(f"r{i}" for i in [*range(51), 0])
        assert f"role inheritance has a cycle: {expected}" in str(info.value)

    def test_no_half_loaded_policy_for_a_late_error(self) -> None:
        document = _two_rules({}, {"id": "r2", "effect": "nope"})
        result: list[Policy] = []
        with pytest.raises(PolicyError):
            result.append(Policy.from_dict(document))
        assert [] == result


class TestSyntaxErrors:
    """Documents that are not TOML, JSON or YAML at all name the line."""

    def test_toml_text(self) -> None:
        with pytest.raises(PolicyError, match=r"not valid TOML: .*at line 2, column 9") as info:
            Policy.from_toml("version = 1\nroles = = 2\n")
        assert None is info.value.source

    def test_toml_end_of_document(self) -> None:
        with pytest.raises(PolicyError, match=r"not valid TOML: .*end of document, line 2"):
            Policy.from_toml("version = 1\nroles = [\n")

    def test_toml_file(self, tmp_path: Path) -> None:
        path = tmp_path / "policy.toml"
        path.write_text("version = 1\n\n[[rules]\n", encoding="utf-8")
        with pytest.raises(PolicyError, match=r"line 3") as info:
            Policy.from_file(path)
        assert str(path) == info.value.source

    def test_json_text(self) -> None:
        with pytest.raises(PolicyError, match=r"not valid JSON: .* at line 3, column 1"):
            Policy.from_json('{\n  "version": 1,\n}')

    def test_json_file(self, tmp_path: Path) -> None:
        path = tmp_path / "policy.json"
        path.write_text('{"version": 1', encoding="utf-8")
        with pytest.raises(PolicyError, match=r"line 1") as info:
            Policy.from_file(path)
        assert str(path) == info.value.source

    def test_yaml(self) -> None:
        with pytest.raises(PolicyError, match=r"(?s)not valid YAML: .*line 3, column 5"):
            Policy.from_yaml("version: 1\nrules:\n  - [unclosed\n")

    def test_yaml_is_loaded_safely(self) -> None:
        with pytest.raises(PolicyError, match="not valid YAML"):
            Policy.from_yaml("version: !!python/object/apply:os.getcwd []\n")

    def test_yaml_list_at_top(self) -> None:
        with pytest.raises(PolicyError, match="a table at the top level"):
            Policy.from_yaml("- version: 1\n")


class TestParseDuration:
    """Durations for mfa_max_age: unit strings or seconds, always positive."""

    @pytest.mark.parametrize(
        ("value", "seconds"),
        [
            ("15m", 900),
            ("1h30m", 5400),
            ("90s", 90),
            ("2d", 172800),
            ("1d2h3m4s", 93784),
            ("30m30m", 3600),
            (30, 30),
            (1.5, 1.5),
        ],
    )
    def test_accepted(self, value: object, seconds: float) -> None:
        assert timedelta(seconds=seconds) == parse_duration(value)

    @pytest.mark.parametrize(
        "value",
        [
            "",
            "15",
            "m",
            "15 m",
            "15M",
            "1.5h",
            "-5m",
            "15m ",
            "0s",
            "0m0s",
            0,
            -1,
            -0.5,
            True,
            None,
            [15],
        ],
    )
    def test_refused(self, value: object) -> None:
        with pytest.raises(ValueError, match="duration"):
            parse_duration(value)


class TestEffectiveRoles:
    """Role inheritance is closed transitively, without a recursion limit."""

    def test_transitive(self) -> None:
        policy = Policy.from_dict(
            {
                "version": 1,
                "roles": {
                    "viewer": {},
                    "agent": {"inherits": ["viewer"]},
                    "senior": {"inherits": ["agent"]},
                    "auditor": {"inherits": ["viewer"]},
                    "admin": {"inherits": ["senior", "auditor"]},
                },
            }
        )
        assert frozenset({"viewer"}) == policy.effective_roles(["viewer"])
        assert frozenset({"senior", "agent", "viewer"}) == policy.effective_roles(["senior"])
        assert frozenset({"admin", "senior", "auditor", "agent", "viewer"}) == (
            policy.effective_roles({"admin"})
        )
        assert frozenset({"auditor", "agent", "viewer"}) == (
            policy.effective_roles(["auditor", "agent"])
        )

    def test_undeclared_and_empty(self) -> None:
        policy = Policy.from_dict(minimal())
        assert frozenset({"ghost"}) == policy.effective_roles(["ghost"])
        assert frozenset() == policy.effective_roles([])

    @pytest.mark.parametrize("length", [500, 3000])
    def test_deep_chain(self, length: int) -> None:
        policy = Policy.from_dict(chain(length))
        assert frozenset(f"r{i}" for i in range(length + 1)) == policy.effective_roles(["r0"])
        assert frozenset({f"r{length - 1}", f"r{length}"}) == (
            policy.effective_roles([f"r{length - 1}"])
        )

    def test_deep_chain_in_any_declaration_order(self) -> None:
        document = chain(2000)
        document["roles"] = dict(reversed(list(document["roles"].items())))
        policy = Policy.from_dict(document)
        assert 2001 == len(policy.effective_roles(["r0"]))

    def test_wide_diamond(self) -> None:
        roles: dict[str, Any] = {"base": {}}
        roles |= {f"mid{i}": {"inherits": ["base"]} for i in range(200)}
        roles["top"] = {"inherits": [f"mid{i}" for i in range(200)]}
        policy = Policy.from_dict({"version": 1, "roles": roles})
        assert 202 == len(policy.effective_roles(["top"]))


class TestLoaderEntryPoints:
    """Each entry point tells text from a path the same way."""

    @pytest.mark.parametrize(
        ("load", "text"),
        [
            (Policy.from_toml, TOML),
            (Policy.from_json, json.dumps(DOCUMENT)),
            (Policy.from_yaml, YAML),
        ],
    )
    def test_text(self, load: Callable[[str], Policy], text: str) -> None:
        assert content(Policy.from_dict(DOCUMENT)) == content(load(text))

    @pytest.mark.parametrize("load", [Policy.from_toml, Policy.from_json, Policy.from_yaml])
    def test_path_that_does_not_exist(self, tmp_path: Path, load: Callable[[Path], Policy]) -> None:
        with pytest.raises(PolicyError, match="no such file"):
            load(tmp_path / "nothing-here")
