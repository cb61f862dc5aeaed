"""A bad configuration file is refused with its path and the line or field at fault."""

import pytest

from service.loyalty import ConfigError, load_loyalty_config

GOOD = """
orgs:
  - orgId: 1
    dualEligibility: true
    primaryIdentifier: Mobile
    defaultProgramId: 9
    programs:
      - programId: 9
        tiers:
          - {serial: 2, name: Silver, upgradeBasedOn: CUMULATIVE_PURCHASES, upgradeThreshold: 5000}
          - {serial: 1, name: Bronze}
    clients:
      - {username: till, passwordHash: "$2b$04$abcdefghijklmnopqrstuuFq1zX6r4X0sWq2Zn1hVZ7m5uS8uQ7W."}
"""


def _load(tmp_path, text):
    path = tmp_path / "loyalty.yaml"
    path.write_text(text)
    return path, load_loyalty_config(path)


def test_a_valid_file_loads_with_tiers_ordered(tmp_path):
    _, config = _load(tmp_path, GOOD)
    org = config.orgs[0]
    assert org.primaryIdentifier == "mobile"
    assert [t.name for t in org.programs[0].tiers] == ["Bronze", "Silver"]
    assert config.client("basic", "till").org.orgId == 1


@pytest.mark.parametrize(
    "change, field",
    [
        (("defaultProgramId: 9", "defaultProgramId: 8"), "orgs.0"),
        (('passwordHash: "$2b$04$', 'passwordHash: "plain'), "orgs.0.clients.0.passwordHash"),
        (("primaryIdentifier: Mobile", "primaryIdentifier: shoe"), "orgs.0.primaryIdentifier"),
        (
            ("upgradeBasedOn: CUMULATIVE_PURCHASES", "upgradeBasedOn: VISITS"),
            "orgs.0.programs.0.tiers.0.upgradeBasedOn",
        ),
        (("orgId: 1", "orgId: -1"), "orgs.0.orgId"),
    ],
)
def test_a_bad_field_is_named_with_the_path(tmp_path, change, field):
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, GOOD.replace(*change))
    assert str(tmp_path / "loyalty.yaml") in str(raised.value)
    assert f"field {field}" in str(raised.value)


def test_a_yaml_syntax_error_gives_the_line(tmp_path):
    with pytest.raises(ConfigError, match=r"loyalty.yaml: line 3"):
        _load(tmp_path, "orgs:\n  - orgId: 1\n  bad: [unclosed\n")


def test_a_username_in_two_orgs_is_refused(tmp_path):
    second = GOOD.replace("orgs:\n", "orgs:\n", 1) + GOOD.split("orgs:\n", 1)[1].replace("orgId: 1", "orgId: 2")
    with pytest.raises(ConfigError, match="exactly one org"):
        _load(tmp_path, second)


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_loyalty_config(tmp_path / "absent.yaml")
