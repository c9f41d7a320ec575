"""The message catalogue (recommend.messages): Chinese by default, English on request, the
platform's own wording validated, and every product rendering reasons and notes from it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import recommend as rc
from recommend.errors import ConfigError
from recommend.messages import (
    LANGS,
    ListText,
    Message,
    message_keys,
    render,
    template,
    value_label,
)
from recommend.serving import MenuService


@pytest.fixture(autouse=True)
def _clean_overrides() -> Iterator[None]:
    rc.reset_messages()
    yield
    rc.reset_messages()


@pytest.fixture(scope="module")
def ease(sample_dataset: rc.Dataset) -> rc.Recommender:
    return rc.EASE(l2=300.0).fit(sample_dataset)


def _pinned_member(model: rc.Recommender) -> str:
    """A member whose menu starts with a compulsory pin."""
    ids = list(model.member_ids_.external_ids[:200])
    menus = rc.member_menu(model, ids, n=3, lang="en")
    pinned = menus[menus["reason"] == "compulsory for your branch"]
    assert len(pinned), "the sample has compulsory courses"
    return str(pinned["member_id"].iloc[0])


# ---------------------------------------------------------------------------- catalogue


def test_every_key_in_every_language_with_its_placeholders() -> None:
    keys = message_keys()
    assert len(keys) > 100
    for key in keys:
        for lang in LANGS:
            assert template(key, lang).strip() or key.endswith("separator"), (key, lang)
    assert render("reason.studied", title="办公软件入门") == "因为你学过《办公软件入门》"
    assert (
        render("reason.studied", "en", title="办公软件入门") == "because you studied 办公软件入门"
    )
    assert value_label("occupation", "retired") == "退休"
    assert value_label("occupation", "retired", "en") == "retired"
    assert value_label("occupation", "astronaut") == "astronaut"  # not in the catalogue
    assert ListText(("a", "b")).text() == "a、b"
    assert ListText(("a", "b")).text("en") == "a, b"
    assert str(Message.of("note.group_short", count=2, asked=5)).startswith("only 2 course(s)")


@pytest.mark.parametrize(
    ("overrides", "lang", "message"),
    [
        (
            {"reason.compulsry": "必学"},
            "zh",
            "unknown message key 'reason.compulsry'; did you mean",
        ),
        ({"reason.studied": "你学过相关课程"}, "zh", "lacks placeholder(s) {title}"),
        ({"reason.compulsory": "{branch}必学"}, "zh", "has unknown placeholder(s) {branch}"),
        ({"reason.studied": "学过《{title}"}, "zh", None),  # fine: a plain character
        ({"reason.studied": "学过《{title》"}, "zh", "malformed template"),
        ({"reason.studied": "学过《{0}》"}, "zh", "placeholder {0}"),
        ({"reason.compulsory": ""}, "zh", "must be a non-empty string"),
        ({"reason.compulsory": 3}, "zh", "must be a non-empty string, got 3"),
        ({"reason.compulsory": "必学"}, "fr", "lang='fr'; expected one of ['zh', 'en']"),
    ],
)
def test_overrides_are_validated(overrides: dict, lang: str, message: str | None) -> None:
    if message is None:
        rc.set_messages(overrides, lang=lang)
        return
    with pytest.raises(ConfigError, match=re.escape(message)):
        rc.set_messages(overrides, lang=lang)
    assert template("reason.compulsory") == "本支部必学"  # nothing changed


def test_an_english_override_may_add_the_details_the_chinese_text_gives() -> None:
    rc.set_messages({"reason.short": "{reason}; fits in {minutes} min"}, lang="en")
    assert render("reason.short", "en", reason="popular", minutes=5) == "popular; fits in 5 min"
    with pytest.raises(ConfigError, match=r"lacks placeholder\(s\) \{reason\}"):
        rc.set_messages({"reason.short": "{minutes} min"}, lang="en")


def test_overrides_from_a_toml_file(tmp_path: Path) -> None:
    good = tmp_path / "wording.toml"
    good.write_text(
        '[zh]\n"reason.compulsory" = "支部必学课"\n[en]\n"reason.global" = "trending"\n'
    )
    rc.load_messages(good)
    assert template("reason.compulsory") == "支部必学课"
    assert template("reason.global", "en") == "trending"
    rc.reset_messages()
    assert template("reason.compulsory") == "本支部必学"

    bad = tmp_path / "bad.toml"
    bad.write_text('[zh]\n"reason.compulsory" = "支部必学课"\n"reason.studied" = "学过"\n')
    with pytest.raises(ConfigError, match=r"bad.toml \[zh\]: template for 'reason.studied'"):
        rc.load_messages(bad)
    assert template("reason.compulsory") == "本支部必学"  # all or nothing
    (tmp_path / "fr.toml").write_text('[fr]\n"reason.global" = "populaire"\n')
    with pytest.raises(ConfigError, match=r"tables \['fr'\]; expected some of \['zh', 'en'\]"):
        rc.load_messages(tmp_path / "fr.toml")
    (tmp_path / "broken.toml").write_text("[zh\n")
    with pytest.raises(ConfigError, match="is not a UTF-8 TOML file"):
        rc.load_messages(tmp_path / "broken.toml")
    with pytest.raises(ConfigError, match="cannot read the messages file"):
        rc.load_messages(tmp_path / "missing.toml")


# ---------------------------------------------------------------------------- menus


def test_menus_speak_chinese_by_default_and_english_on_request(ease: rc.Recommender) -> None:
    member = _pinned_member(ease)
    ids = [member, *ease.member_ids_.external_ids[:30].tolist(), "ghost"]
    zh = rc.member_menu(ease, ids, n=6)
    en = rc.member_menu(ease, ids, n=6, lang="en")
    assert zh[["member_id", "course_id", "rank"]].equals(en[["member_id", "course_id", "rank"]])
    assert zh["reason"].iloc[0] == "本支部必学"
    assert en["reason"].iloc[0] == "compulsory for your branch"
    studied = zh["reason"].str.startswith("因为你学过《")
    assert studied.any()
    assert en["reason"][studied].str.startswith("because you studied ").all()
    assert (zh.loc[zh["member_id"] == "ghost", "reason"] == "全平台热门").all()
    assert (en.loc[en["member_id"] == "ghost", "reason"] == "popular on the platform").all()
    with pytest.raises(ConfigError, match=r"lang='english'; expected one of \['zh', 'en'\]"):
        rc.member_menu(ease, [member], lang="english")  # type: ignore[arg-type]


def test_the_platform_wording_reaches_the_menus(ease: rc.Recommender) -> None:
    member = _pinned_member(ease)
    rc.set_messages({"reason.compulsory": "支部要求必学"})
    assert rc.member_menu(ease, [member], n=3)["reason"].iloc[0] == "支部要求必学"
    rc.reset_messages()
    assert rc.member_menu(ease, [member], n=3)["reason"].iloc[0] == "本支部必学"


def test_reasons_say_why_now(ease: rc.Recommender, sample_platform: rc.Platform) -> None:
    ids = list(ease.member_ids_.external_ids[:40])
    short = rc.member_menu(ease, ids, n=5, max_minutes=12, pin_compulsory=False)
    minutes = short["reason"].str.extract(r"，(\d+)分钟可学完$")[0]
    assert minutes.notna().all(), short["reason"].head().tolist()
    durations = sample_platform.courses.set_index("course_id")["duration_seconds"]
    want = (durations.loc[short["course_id"]] / 60).apply(lambda m: max(int(-(-m // 1)), 1))
    assert minutes.astype(int).tolist() == want.tolist()
    # English keeps its short reasons.
    en = rc.member_menu(ease, ids, n=5, max_minutes=12, pin_compulsory=False, lang="en")
    assert not en["reason"].str.contains("min").any()

    # New: published in the 30 days before the menu's time.
    courses = sample_platform.courses
    latest = pd.Timestamp(courses["published_at"].max())
    menu = rc.member_menu(ease, ["ghost"], n=50, now=latest, pin_compulsory=False)
    published = courses.set_index("course_id")["published_at"].loc[menu["course_id"]]
    fresh = (published > latest - pd.Timedelta(days=30)).to_numpy()
    assert fresh.any() and not fresh.all()
    assert (menu["reason"].str.endswith("，新上线").to_numpy() == fresh).all()


def test_a_cold_member_is_told_which_group_studies_the_course(ease: rc.Recommender) -> None:
    attrs = pd.DataFrame(
        {"member_id": ["new-1", "new-2"], "occupation": ["retired", "white_collar"]}
    )
    menu = rc.member_menu(ease, attrs["member_id"], member_attributes=attrs, n=3)
    by_member = menu.groupby("member_id")["reason"].first()
    assert by_member["new-1"] == "与你同为退休党员的同志常学"
    assert by_member["new-2"] == "与你同为白领党员的同志常学"
    en = rc.member_menu(ease, attrs["member_id"], member_attributes=attrs, n=3, lang="en")
    assert (en["reason"] == "popular with members like you").all()


# ---------------------------------------------------------------------------- other products


def test_search_reasons_and_notes_follow_lang(ease: rc.Recommender) -> None:
    from recommend.search import search

    member = str(ease.member_ids_.external_ids[0])
    zh = search(ease, member, "三会一课 xyzabc", n=3)
    assert zh["reason"].str.startswith("含“三会一课”；").all()
    assert zh.attrs["notes"] == ["以下词在课程中都没有出现：xyzabc"]
    en = search(ease, member, "三会一课 xyzabc", n=3, lang="en")
    assert en["reason"].str.startswith("matches 三会一课; ").all()
    assert en.attrs["notes"] == ["not found in any course: xyzabc"]


def test_group_notes_follow_lang(ease: rc.Recommender) -> None:
    from recommend.group import order_for_group

    members = [*ease.member_ids_.external_ids[:20].tolist(), "ghost"]
    zh = order_for_group(ease, members, n=5)
    assert "1名成员（共21名）不在模型中，未计入：ghost" in zh.notes
    en = order_for_group(ease, members, n=5, lang="en")
    assert "1 of 21 member id(s) unknown to the model were left out: ghost" in en.notes


def test_batch_reasons_follow_lang(ease: rc.Recommender, tmp_path: Path) -> None:
    member = _pinned_member(ease)
    for lang, want in (("zh", "本支部必学"), ("en", "compulsory for your branch")):
        result = rc.run_batch(
            ease,
            tmp_path / lang,
            n=3,
            members=[member],
            with_reasons=True,
            lang=lang,  # type: ignore[arg-type]
            progress=False,
        )
        rows = pd.read_parquet(result.files[0])
        assert rows["reason"].iloc[0] == want


def test_pyfunc_requests_choose_their_language(ease: rc.Recommender) -> None:
    member = _pinned_member(ease)
    service = MenuService(ease)
    got = service.predict(pd.DataFrame({"member_id": [member, member], "lang": [None, "en"]}))
    first = got.groupby(got.index // 10)["reason"].first().tolist()
    assert first == ["本支部必学", "compulsory for your branch"]
    with pytest.raises(rc.DataError, match=r"requests.lang: one of zh, en.*values 'fr'"):
        service.predict(pd.DataFrame({"member_id": [member], "lang": ["fr"]}))


def test_cli_lang_and_messages(
    ease: rc.Recommender, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from recommend.cli import main

    member = _pinned_member(ease)
    rc.save(ease, tmp_path / "model")
    assert main(["menu", "--model", str(tmp_path / "model"), "--member", member, "--n", "3"]) == 0
    assert "本支部必学" in capsys.readouterr().out
    args = ["menu", "--model", str(tmp_path / "model"), "--member", member, "--n", "3"]
    assert main([*args, "--lang", "en"]) == 0
    assert "compulsory for your branch" in capsys.readouterr().out
    wording = tmp_path / "wording.toml"
    wording.write_text('[zh]\n"reason.compulsory" = "支部要求必学"\n', encoding="utf-8")
    assert main([*args, "--messages", str(wording)]) == 0
    assert "支部要求必学" in capsys.readouterr().out
    # The branch's whole compulsory list, apart from the menu's two pins.
    rc.reset_messages()
    assert main([*args, "--compulsory"]) == 0
    listed = capsys.readouterr().out
    want = rc.compulsory_courses(ease, [member])
    assert listed.count("本支部必学") == len(want) and all(c in listed for c in want["course_id"])
    wording.write_text('[zh]\n"reason.compulsory" = "{branch}必学"\n', encoding="utf-8")
    assert main([*args, "--messages", str(wording)]) == 2
    assert "has unknown placeholder(s) {branch}" in capsys.readouterr().err
