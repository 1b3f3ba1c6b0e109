"""Questions from a prompt, offline and deterministic (TIFA/DSG-style, with spaCy's parse).

``prompt_questions(text)`` parses ``text`` with the project's spaCy model
(``t2ibench.attention.text.spacy_pipeline``) and returns a :class:`QuestionSet`: for each entity
(a noun chunk that names a thing), a presence question; for its colour and texture/material
words, one question each; for an explicit number (>= 2), a count question; for each spatial
relation between two entities, a relation question; for each entity doing a verb, an action
question; for each time-of-day word, a time question. Every question has one of Attention
Modulation's six categories (:data:`CATEGORIES`), an expected answer ("yes" or a number in
digits) and its parents (DSG: a child counts only where its parents hold). The grammar and the
word lists are the project's choice (docs/protocols.md, "Questions from a prompt").

Each question names a :class:`Target` (noun + the colour/texture words it asserts) so that a
backend with structured predictions (tinyworld's evaluator, a detector) can answer it without
reading the text. Attribute questions are existential: "Is the circle red?" holds when some
circle is red.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

#: Attention Modulation's six categories (Table 2): colour, content (objects and actions),
#: numerical (counts), texture (surface/material), time (of day), location (spatial relations).
CATEGORIES = ("color", "content", "numerical", "texture", "time", "location")
KINDS = ("presence", "color", "texture", "count", "relation", "action", "time")
CATEGORY_OF_KIND = {"presence": "content", "action": "content", "color": "color", "texture": "texture",
                    "count": "numerical", "relation": "location", "time": "time"}

COLORS = {"red": "red", "orange": "orange", "yellow": "yellow", "green": "green", "blue": "blue",
          "purple": "purple", "pink": "pink", "brown": "brown", "black": "black", "white": "white",
          "gray": "gray", "grey": "gray", "silver": "silver", "gold": "gold", "golden": "gold",
          "beige": "beige", "violet": "violet", "maroon": "maroon", "navy": "navy", "teal": "teal",
          "turquoise": "turquoise"}
TEXTURES = frozenset({
    "wooden", "wood", "metal", "metallic", "steel", "iron", "plastic", "glass", "ceramic", "porcelain",
    "stone", "brick", "marble", "concrete", "leather", "wicker", "paper", "cardboard", "rubber", "straw",
    "furry", "fluffy", "woolen", "wool", "velvet", "silk", "denim", "striped", "spotted", "plaid",
    "checkered", "tiled", "rusty", "shiny", "plain"})
NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
           "ten": 10, "eleven": 11, "twelve": 12}
#: time-of-day word -> canonical value; the question is "Is it <TIME_PHRASES[value]>?"
TIMES = {"night": "night", "nighttime": "night", "midnight": "night", "day": "day", "daytime": "day",
         "sunset": "sunset", "sunrise": "sunrise", "dusk": "dusk", "dawn": "dawn", "morning": "morning",
         "evening": "evening", "afternoon": "afternoon", "noon": "noon", "twilight": "twilight"}
TIME_PHRASES = {"day": "daytime"}
#: relation phrase (lower-case words, longest first when matching) -> (canonical phrase, direction)
RELATIONS: dict[tuple[str, ...], tuple[str, str | None]] = {
    ("to", "the", "left", "of"): ("to the left of", "left"), ("on", "the", "left", "of"): ("to the left of", "left"),
    ("left", "of"): ("to the left of", "left"),
    ("to", "the", "right", "of"): ("to the right of", "right"), ("on", "the", "right", "of"): ("to the right of", "right"),
    ("right", "of"): ("to the right of", "right"),
    ("in", "front", "of"): ("in front of", None), ("on", "top", "of"): ("on top of", "above"),
    ("next", "to"): ("next to", None), ("beside",): ("next to", None),
    ("above",): ("above", "above"), ("over",): ("over", "above"), ("on",): ("on", "above"),
    ("below",): ("below", "below"), ("under",): ("under", "below"), ("underneath",): ("underneath", "below"),
    ("beneath",): ("beneath", "below"), ("behind",): ("behind", None), ("near",): ("near", None),
    ("in",): ("in", None), ("inside",): ("inside", None),
}
#: nouns that are never entities: parts of relation phrases, picture words, quantities
NOT_ENTITIES = frozenset({
    "left", "right", "top", "front", "side", "middle", "bottom", "edge", "back", "center", "centre",
    "picture", "photo", "photograph", "image", "view", "shot", "closeup", "close", "scene", "snapshot",
    "group", "bunch", "couple", "pair", "lot", "lots", "number", "herd", "flock", "pile", "stack", "row",
    "set", "variety", "assortment", "collection", "crowd", "kind", "type", "background", "foreground"})
#: nouns asked without an article ("Is there rain?")
MASS_NOUNS = frozenset({"rain", "snow", "food", "water", "grass", "broccoli", "sand", "traffic", "furniture",
                        "luggage", "hair", "bread", "rice", "fruit", "meat", "dirt", "mud", "smoke", "fog",
                        "ice", "cheese", "milk", "coffee", "wine", "beer", "pasta", "salad", "lettuce", "soup"})
#: nouns whose time-word modifier is the time of the scene ("a night sky", "on a day background")
SCENE_NOUNS = frozenset({"sky", "background", "scene", "time", "landscape"})
#: verbs that are not actions of an entity ("a room that has a bed", "a picture showing ...")
NOT_ACTIONS = frozenset({"be", "have", "do", "show", "feature", "depict", "contain", "include", "appear",
                         "seem", "display", "consist", "make", "get"})


@dataclass(frozen=True)
class Target:
    """What a question names: a noun (lemma, compounds joined) and the colour/texture words it asserts."""

    noun: str
    colors: tuple[str, ...] = ()
    textures: tuple[str, ...] = ()


@dataclass(frozen=True)
class Question:
    """One question about an image.

    ``answer``: the expected answer, normalised ("yes", or a count in digits); ``parents``: ids
    of the questions it depends on; ``subject``/``object``: the targets named; ``value``: the
    colour, texture, relation direction (left/right/above/below or the phrase), verb lemma or
    time value asked about.
    """

    id: str
    text: str
    category: str
    kind: str
    answer: str
    parents: tuple[str, ...] = ()
    subject: Target | None = None
    object: Target | None = None
    value: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> "Question":
        def target(t: Any) -> Target | None:
            return None if t is None else Target(t["noun"], tuple(t.get("colors", ())), tuple(t.get("textures", ())))

        return Question(id=d["id"], text=d["text"], category=d["category"], kind=d["kind"], answer=str(d["answer"]),
                        parents=tuple(d.get("parents", ())), subject=target(d.get("subject")),
                        object=target(d.get("object")), value=d.get("value"))


@dataclass(frozen=True)
class QuestionSet:
    """The questions of one prompt and what was left out (``skipped``: one reason per item)."""

    prompt: str
    questions: tuple[Question, ...]
    skipped: tuple[str, ...] = field(default=())


@dataclass
class _Entity:
    root: Any  # spaCy Token
    noun: str  # lemma key ("stop sign")
    text: str  # as written ("stop signs")
    plural: bool
    colors: list[str]
    textures: list[tuple[str, bool]]  # (word, is_noun)
    count: int | None
    start: int  # first token index of the chunk (determiners dropped)
    qid: str = ""

    @property
    def target(self) -> Target:
        return Target(self.noun, tuple(self.colors), tuple(w for w, _ in self.textures))


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _plural(word: str) -> str:
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def gerund(lemma: str) -> str:
    """"ride" -> "riding", "sit" -> "sitting", "lie" -> "lying", "eat" -> "eating"."""
    vowels = "aeiou"
    if lemma.endswith("ie"):
        return lemma[:-2] + "ying"
    if lemma.endswith("e") and not lemma.endswith(("ee", "ye", "oe")) and len(lemma) > 2:
        return lemma[:-1] + "ing"
    groups = sum(1 for i, c in enumerate(lemma) if c in vowels and (i == 0 or lemma[i - 1] not in vowels))
    if (groups == 1 and len(lemma) >= 3 and lemma[-1] not in vowels + "wxy" and lemma[-2] in vowels
            and lemma[-3] not in vowels):
        return lemma + lemma[-1] + "ing"
    return lemma + "ing"


def _number(token: Any) -> int | None:
    w = token.lower_
    if w.isdigit():
        return int(w)
    return NUMBERS.get(w)


def _is_negated(chunk: Any) -> bool:
    if any(t.lower_ == "no" and t.dep_ == "det" for t in chunk):
        return True
    head = chunk.root.head
    return chunk.root.dep_ == "pobj" and head.lower_ == "without"


def _entities(doc: Any, skipped: list[str]) -> list[_Entity]:
    out: list[_Entity] = []
    for chunk in doc.noun_chunks:
        root = chunk.root
        if root.pos_ not in ("NOUN", "PROPN"):
            continue
        if root.lemma_.lower() in NOT_ENTITIES or root.lower_ in NOT_ENTITIES or root.lemma_.lower() in TIMES:
            continue
        if _is_negated(chunk):
            skipped.append(f"negated entity: {chunk.text!r}")
            continue
        toks = [t for t in chunk if t.i < root.i and t.dep_ not in ("det", "poss") and t.pos_ not in ("DET", "PRON")]
        colors = [COLORS[t.lower_] for t in toks if t.lower_ in COLORS]
        colors += [COLORS[c.lower_] for c in root.children if c.dep_ == "acomp" and c.lower_ in COLORS]
        textures = [(t.lower_, t.pos_ in ("NOUN", "PROPN")) for t in toks if t.lower_ in TEXTURES]
        compounds = [t for t in toks if t.dep_ == "compound" and t.pos_ in ("NOUN", "PROPN") and t.lower_ not in TEXTURES
                     and t.lower_ not in COLORS and t.lower_ not in TIMES]
        counts = [n for t in root.children if t.dep_ == "nummod" and (n := _number(t)) is not None]
        count = counts[0] if counts and counts[0] >= 2 else None
        noun = " ".join([t.lower_ for t in compounds] + [root.lemma_.lower()])
        text = " ".join([t.lower_ for t in compounds] + [root.lower_])
        mass = root.lemma_.lower() in MASS_NOUNS and count is None
        plural = (root.tag_ in ("NNS", "NNPS") and not mass) or count is not None
        out.append(_Entity(root, noun, text, plural, colors, textures, count, toks[0].i if toks else root.i))
    return out


def _predicates(doc: Any, entities: list[_Entity]) -> None:
    """"The bus is red": an adjective complement of a copula whose subject is an entity."""
    by_root = {e.root.i: e for e in entities}
    for t in doc:
        if t.dep_ == "acomp" and t.head.lemma_ == "be":
            subj = [c for c in t.head.children if c.dep_ in ("nsubj", "nsubjpass") and c.i in by_root]
            for s in subj:
                e = by_root[s.i]
                if t.lower_ in COLORS and COLORS[t.lower_] not in e.colors:
                    e.colors.append(COLORS[t.lower_])
                elif t.lower_ in TEXTURES and t.lower_ not in [w for w, _ in e.textures]:
                    e.textures.append((t.lower_, False))


def _merge(entities: list[_Entity]) -> list[_Entity]:
    """Later mentions of a noun with nothing new ("a dog ... the dog") are the same entity."""
    out: list[_Entity] = []
    for e in entities:
        same = [o for o in out if o.noun == e.noun]
        if same and (not e.colors and not e.textures and e.count is None
                     or any(o.target == e.target and o.count == e.count for o in same)):
            continue
        out.append(e)
    return out


def _entity_at(token: Any, by_root: Mapping[int, _Entity]) -> _Entity | None:
    """The entity rooted at ``token``, or the Y of a quantity or picture noun "a group of Y"."""
    if token.i in by_root:
        return by_root[token.i]
    if token.lemma_.lower() in NOT_ENTITIES:
        for prep in token.children:
            if prep.dep_ == "prep" and prep.lower_ == "of":
                return next((by_root[c.i] for c in prep.children if c.dep_ == "pobj" and c.i in by_root), None)
    return None


def _subject_of(token: Any, by_root: Mapping[int, _Entity], entities: list[_Entity]) -> _Entity | None:
    h = token.head
    for _ in range(4):
        e = _entity_at(h, by_root) if h.i != token.i else None
        if e is not None:
            return e
        if h.pos_ in ("VERB", "AUX"):
            subj = [c for c in h.children if c.dep_ in ("nsubj", "nsubjpass") and c.i in by_root]
            if subj:
                return by_root[subj[0].i]
        if h.head is h:
            break
        h = h.head
    before = [e for e in entities if e.root.i < token.i]
    return before[-1] if before else None


def _relations(doc: Any, entities: list[_Entity], by_root: Mapping[int, _Entity]) -> list[tuple[_Entity, str, str | None, _Entity]]:
    words = [t.lower_ for t in doc]
    patterns = sorted(RELATIONS, key=len, reverse=True)
    out = []
    i = 0
    while i < len(words):
        match = next((p for p in patterns if tuple(words[i:i + len(p)]) == p), None)
        if match is None:
            i += 1
            continue
        end = i + len(match)
        phrase, direction = RELATIONS[match]
        obj = next((e for e in entities if e.start >= end and e.root.i >= end), None)
        if obj is not None and all(t.pos_ in ("DET", "ADJ", "NUM", "NOUN", "PROPN") or t.dep_ in ("poss", "amod")
                                  for t in doc[end:obj.root.i]):
            subj = _subject_of(doc[i], by_root, entities)
            if subj is not None and subj is not obj and subj.root.i < i:
                out.append((subj, phrase, direction, obj))
        i = end
    return out


def _actions(doc: Any, by_root: Mapping[int, _Entity]) -> list[tuple[_Entity, Any, _Entity | None]]:
    out = []
    subject_of: dict[int, _Entity] = {}
    for t in doc:
        if t.pos_ != "VERB" or t.lemma_.lower() in NOT_ACTIONS or t.tag_ not in ("VBG", "VBZ", "VBP", "VBD", "VBN"):
            continue
        subj = next((by_root[c.i] for c in t.children if c.dep_ in ("nsubj", "nsubjpass") and c.i in by_root), None)
        if subj is None and t.dep_ in ("acl", "relcl"):
            subj = _entity_at(t.head, by_root)
        if subj is None and t.dep_ == "conj" and t.head.i in subject_of:
            subj = subject_of[t.head.i]
        if subj is None:
            continue
        subject_of[t.i] = subj
        obj = next((by_root[c.i] for c in t.children if c.dep_ == "dobj" and c.i in by_root), None)
        out.append((subj, t, obj))
    return out


def _times(doc: Any) -> list[str]:
    out: list[str] = []
    for t in doc:
        value = TIMES.get(t.lower_)
        if value is None or t.pos_ not in ("NOUN", "ADJ", "PROPN"):
            continue
        if t.dep_ in ("compound", "npadvmod") and t.head.lower_ not in TIMES and t.head.lemma_ not in SCENE_NOUNS:
            continue  # "night stand", "evening gown": a modifier, not the time of the scene
        if value not in out:
            out.append(value)
    return out


def _there(e: _Entity, words: str) -> str:
    if e.plural:
        return f"Are there {words}?"
    if e.noun in MASS_NOUNS:
        return f"Is there {words}?"
    return f"Is there {_article(words)} {words}?"


def _the(e: _Entity) -> str:
    return f"the {e.text}"


def _be(e: _Entity) -> str:
    return "Are" if e.plural else "Is"


def prompt_questions(text: str) -> QuestionSet:
    """The questions of ``text`` (see the module doc); an empty set with a reason when none apply."""
    from t2ibench.attention.text import spacy_pipeline

    doc = spacy_pipeline()(text)
    skipped: list[str] = []
    entities = _entities(doc, skipped)
    _predicates(doc, entities)
    entities = _merge(entities)
    by_root = {e.root.i: e for e in entities}
    ambiguous = {e.noun for e in entities if sum(o.noun == e.noun for o in entities) > 1}
    qs: list[Question] = []

    def add(text_: str, kind: str, answer: str, parents=(), subject=None, obj=None, value=None, category=None) -> str:
        if any(q.text == text_ for q in qs):
            return next(q.id for q in qs if q.text == text_)
        qid = f"q{len(qs) + 1}"
        qs.append(Question(qid, text_, category or CATEGORY_OF_KIND[kind], kind, answer, tuple(parents), subject, obj, value))
        return qid

    for e in entities:
        if e.noun in ambiguous:  # "a black dog and a white dog": name the attributes in the presence question
            words = " ".join(e.colors + [w for w, _ in e.textures] + [e.text])
            cat = "color" if e.colors else ("texture" if e.textures else "content")
            e.qid = add(_there(e, words), "presence", "yes", subject=e.target, category=cat)
            continue
        e.qid = add(_there(e, e.text), "presence", "yes", subject=Target(e.noun))
    for e in entities:
        if e.noun in ambiguous:
            skipped.append(f"attributes asked in the presence question of an ambiguous noun: {e.text!r}")
        else:
            for c in e.colors:
                add(f"{_be(e)} {_the(e)} {c}?", "color", "yes", [e.qid], Target(e.noun, colors=(c,)), value=c)
            for w, is_noun in e.textures:
                q = f"{_be(e)} {_the(e)} made of {w}?" if is_noun else f"{_be(e)} {_the(e)} {w}?"
                add(q, "texture", "yes", [e.qid], Target(e.noun, textures=(w,)), value=w)
        if e.count is not None:
            words = " ".join(e.colors + [w for w, _ in e.textures] + [e.text if e.plural else _plural(e.text)])
            add(f"How many {words} are there?", "count", str(e.count), [e.qid], e.target, value=str(e.count))
    for s, phrase, direction, o in _relations(doc, entities, by_root):
        add(f"{_be(s)} {_the(s)} {phrase} {_the(o)}?", "relation", "yes", [s.qid, o.qid], s.target, o.target,
            direction or phrase)
    for actor, verb, thing in _actions(doc, by_root):
        lemma = verb.lemma_.lower()
        form = verb.lower_ if verb.tag_ in ("VBG", "VBN") else gerund(lemma)
        obj = thing if thing is not None and thing is not actor else None
        tail = f" {_the(obj)}" if obj is not None else ""
        parents = [actor.qid] + ([obj.qid] if obj is not None else [])
        add(f"{_be(actor)} {_the(actor)} {form}{tail}?", "action", "yes", parents, actor.target,
            obj.target if obj is not None else None, lemma)
    for value in _times(doc):
        add(f"Is it {TIME_PHRASES.get(value, value)}?", "time", "yes", value=value)
    if not qs:
        skipped.append("no entity, time or relation found")
    return QuestionSet(text, tuple(qs), tuple(skipped))
