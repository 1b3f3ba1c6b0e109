"""Question generation on COCO-style captions against hand-written questions (the grammar of
docs/protocols.md, "Questions from a prompt"), including captions to refuse or to skip parts of."""

from __future__ import annotations

import pytest

from t2ibench.metrics.questions import CATEGORIES, Question, gerund, prompt_questions

# caption -> expected questions in order (ids q1, q2, ...): "category | text | answer | parent ids"
CASES: dict[str, list[str]] = {
    "A man riding a horse on the beach at sunset.": [
        "content | Is there a man? | yes", "content | Is there a horse? | yes", "content | Is there a beach? | yes",
        "location | Is the man on the beach? | yes | q1 q3", "content | Is the man riding the horse? | yes | q1 q2",
        "time | Is it sunset? | yes"],
    "Two dogs are sitting to the left of a red car.": [
        "content | Are there dogs? | yes", "content | Is there a car? | yes", "numerical | How many dogs are there? | 2 | q1",
        "color | Is the car red? | yes | q2", "location | Are the dogs to the left of the car? | yes | q1 q2",
        "content | Are the dogs sitting? | yes | q1"],
    "A striped yellow star to the left of a white circle": [
        "content | Is there a star? | yes", "content | Is there a circle? | yes", "color | Is the star yellow? | yes | q1",
        "texture | Is the star striped? | yes | q1", "color | Is the circle white? | yes | q2",
        "location | Is the star to the left of the circle? | yes | q1 q2"],
    "a black cat sitting on top of a wooden table": [
        "content | Is there a cat? | yes", "content | Is there a table? | yes", "color | Is the cat black? | yes | q1",
        "texture | Is the table wooden? | yes | q2", "location | Is the cat on top of the table? | yes | q1 q2",
        "content | Is the cat sitting? | yes | q1"],
    "A picture of three zebras next to a tree": [
        "content | Are there zebras? | yes", "content | Is there a tree? | yes",
        "numerical | How many zebras are there? | 3 | q1", "location | Are the zebras next to the tree? | yes | q1 q2"],
    "A group of people standing in front of a brick building": [
        "content | Are there people? | yes", "content | Is there a building? | yes",
        "texture | Is the building made of brick? | yes | q2",
        "location | Are the people in front of the building? | yes | q1 q2", "content | Are the people standing? | yes | q1"],
    "The bus is red.": ["content | Is there a bus? | yes", "color | Is the bus red? | yes | q1"],
    "two green triangles at night": [
        "content | Are there triangles? | yes", "color | Are the triangles green? | yes | q1",
        "numerical | How many green triangles are there? | 2 | q1", "time | Is it night? | yes"],
    "a blue square during the day": [
        "content | Is there a square? | yes", "color | Is the square blue? | yes | q1", "time | Is it daytime? | yes"],
    "A woman holding an umbrella in the rain": [
        "content | Is there a woman? | yes", "content | Is there an umbrella? | yes", "content | Is there rain? | yes",
        "location | Is the woman in the rain? | yes | q1 q3", "content | Is the woman holding the umbrella? | yes | q1 q2"],
    "A plate of food with broccoli and a fork": [
        "content | Is there a plate? | yes", "content | Is there food? | yes", "content | Is there broccoli? | yes",
        "content | Is there a fork? | yes"],
    "a man eats a sandwich": [
        "content | Is there a man? | yes", "content | Is there a sandwich? | yes",
        "content | Is the man eating the sandwich? | yes | q1 q2"],
    "Three red apples in a wooden bowl": [
        "content | Are there apples? | yes", "content | Is there a bowl? | yes", "color | Are the apples red? | yes | q1",
        "numerical | How many red apples are there? | 3 | q1", "texture | Is the bowl wooden? | yes | q2",
        "location | Are the apples in the bowl? | yes | q1 q2"],
    "A cat sleeping under a white blanket": [
        "content | Is there a cat? | yes", "content | Is there a blanket? | yes", "color | Is the blanket white? | yes | q2",
        "location | Is the cat under the blanket? | yes | q1 q2", "content | Is the cat sleeping? | yes | q1"],
    "A giraffe standing next to a tall tree during the daytime": [
        "content | Is there a giraffe? | yes", "content | Is there a tree? | yes",
        "location | Is the giraffe next to the tree? | yes | q1 q2", "content | Is the giraffe standing? | yes | q1",
        "time | Is it daytime? | yes"],
    "A city street at night with cars": [
        "content | Is there a city street? | yes", "content | Are there cars? | yes", "time | Is it night? | yes"],
    "An empty room": ["content | Is there a room? | yes"],
    "A person": ["content | Is there a person? | yes"],
    "Several birds flying over the ocean": [
        "content | Are there birds? | yes", "content | Is there an ocean? | yes",
        "location | Are the birds over the ocean? | yes | q1 q2", "content | Are the birds flying? | yes | q1"],
    "A silver laptop on a desk next to a lamp": [
        "content | Is there a laptop? | yes", "content | Is there a desk? | yes", "content | Is there a lamp? | yes",
        "color | Is the laptop silver? | yes | q1", "location | Is the laptop on the desk? | yes | q1 q2",
        "location | Is the laptop next to the lamp? | yes | q1 q3"],
    "A baby elephant walking behind its mother": [
        "content | Is there a baby elephant? | yes", "content | Is there a mother? | yes",
        "location | Is the baby elephant behind the mother? | yes | q1 q2",
        "content | Is the baby elephant walking? | yes | q1"],
    "A bowl of soup on a table": [
        "content | Is there a bowl? | yes", "content | Is there soup? | yes", "content | Is there a table? | yes",
        "location | Is the bowl on the table? | yes | q1 q3"],
    "Four people sitting around a table": [
        "content | Are there people? | yes", "content | Is there a table? | yes",
        "numerical | How many people are there? | 4 | q1", "content | Are the people sitting? | yes | q1"],
    "A pink and white cake": [
        "content | Is there a cake? | yes", "color | Is the cake pink? | yes | q1", "color | Is the cake white? | yes | q1"],
    "A clock tower above the buildings": [
        "content | Is there a clock tower? | yes", "content | Are there buildings? | yes",
        "location | Is the clock tower above the buildings? | yes | q1 q2"],
    "A motorcycle parked on the street": [
        "content | Is there a motorcycle? | yes", "content | Is there a street? | yes",
        "location | Is the motorcycle on the street? | yes | q1 q2", "content | Is the motorcycle parked? | yes | q1"],
    "A dog lying on a furry rug in the morning": [
        "content | Is there a dog? | yes", "content | Is there a rug? | yes", "texture | Is the rug furry? | yes | q2",
        "location | Is the dog on the rug? | yes | q1 q2", "content | Is the dog lying? | yes | q1",
        "time | Is it morning? | yes"],
    "A surfer riding a wave at dawn": [
        "content | Is there a surfer? | yes", "content | Is there a wave? | yes",
        "content | Is the surfer riding the wave? | yes | q1 q2", "time | Is it dawn? | yes"],
    "Two brown horses grazing in a field": [
        "content | Are there horses? | yes", "content | Is there a field? | yes", "color | Are the horses brown? | yes | q1",
        "numerical | How many brown horses are there? | 2 | q1", "location | Are the horses in the field? | yes | q1 q2",
        "content | Are the horses grazing? | yes | q1"],
    "A man in a black suit and a woman in a white dress": [
        "content | Is there a man? | yes", "content | Is there a suit? | yes", "content | Is there a woman? | yes",
        "content | Is there a dress? | yes", "color | Is the suit black? | yes | q2", "color | Is the dress white? | yes | q4",
        "location | Is the man in the suit? | yes | q1 q2", "location | Is the woman in the dress? | yes | q3 q4"],
    "A plastic toy below a glass table": [
        "content | Is there a toy? | yes", "content | Is there a table? | yes", "texture | Is the toy plastic? | yes | q1",
        "texture | Is the table made of glass? | yes | q2", "location | Is the toy below the table? | yes | q1 q2"],
    "A snowy mountain at sunrise": ["content | Is there a mountain? | yes", "time | Is it sunrise? | yes"],
    "A view of the ocean": ["content | Is there an ocean? | yes"],
    "A man and a woman": ["content | Is there a man? | yes", "content | Is there a woman? | yes"],
    "5 sheep on a hill": [
        "content | Are there sheep? | yes", "content | Is there a hill? | yes", "numerical | How many sheep are there? | 5 | q1",
        "location | Are the sheep on the hill? | yes | q1 q2"],
    "A chair to the right of a bed": [
        "content | Is there a chair? | yes", "content | Is there a bed? | yes",
        "location | Is the chair to the right of the bed? | yes | q1 q2"],
    "A dog running on the grass during the evening": [
        "content | Is there a dog? | yes", "content | Is there grass? | yes", "location | Is the dog on the grass? | yes | q1 q2",
        "content | Is the dog running? | yes | q1", "time | Is it evening? | yes"],
    # skipped parts: a pronoun object, a negated entity, a time word that only modifies a noun
    "A lamp above a sofa and a rug below it": [
        "content | Is there a lamp? | yes", "content | Is there a sofa? | yes", "content | Is there a rug? | yes",
        "location | Is the lamp above the sofa? | yes | q1 q2"],
    "A table with no chairs and a red vase": [
        "content | Is there a table? | yes", "content | Is there a vase? | yes", "color | Is the vase red? | yes | q2"],
    "A kitchen with no people in it": ["content | Is there a kitchen? | yes"],
    "A night stand next to a bed": ["content | Is there a bed? | yes"],
    "A full moon in the night sky": [
        "content | Is there a moon? | yes", "content | Is there a sky? | yes",
        "location | Is the moon in the sky? | yes | q1 q2", "time | Is it night? | yes"],
    "A stop sign on the side of a street": ["content | Is there a stop sign? | yes", "content | Is there a street? | yes"],
    # a noun named twice with different attributes: the attributes go into each presence question
    "a black dog and a white dog": ["color | Is there a black dog? | yes", "color | Is there a white dog? | yes"],
    # refused: nothing to ask about
    "It is raining.": [],
    "": [],
    "Nothing.": [],
}


def _expected(line: str) -> tuple[str, str, str, tuple[str, ...]]:
    parts = [p.strip() for p in line.split("|")]
    return parts[0], parts[1], parts[2], tuple(parts[3].split()) if len(parts) > 3 else ()


def test_at_least_forty_captions_with_refusals():
    assert len(CASES) >= 40
    assert sum(1 for v in CASES.values() if not v) >= 3


@pytest.mark.parametrize("caption", list(CASES))
def test_questions_match_the_hand_written_ones(caption):
    got = prompt_questions(caption)
    rows = [(q.category, q.text, q.answer, q.parents) for q in got.questions]
    assert rows == [_expected(line) for line in CASES[caption]]
    assert [q.id for q in got.questions] == [f"q{i + 1}" for i in range(len(got.questions))]
    assert all(q.category in CATEGORIES for q in got.questions)


@pytest.mark.parametrize("caption,reason", [
    ("A kitchen with no people in it", "negated entity"), ("A table with no chairs and a red vase", "negated entity"),
    ("It is raining.", "no entity"), ("", "no entity"), ("a black dog and a white dog", "ambiguous noun")])
def test_skipped_parts_say_why(caption, reason):
    assert any(reason in s for s in prompt_questions(caption).skipped)


def test_targets_carry_what_each_question_names():
    qs = {q.text: q for q in prompt_questions("two green triangles to the left of a striped red circle").questions}
    count = qs["How many green triangles are there?"]
    assert (count.subject.noun, count.subject.colors, count.answer) == ("triangle", ("green",), "2")
    rel = qs["Are the triangles to the left of the circle?"]
    assert rel.value == "left" and rel.object.textures == ("striped",) and rel.object.colors == ("red",)
    assert qs["Is the circle striped?"].subject.textures == ("striped",)
    assert qs["Are there triangles?"].subject.colors == ()


def test_questions_round_trip_through_json():
    for q in prompt_questions("Two brown horses grazing in a field to the left of a red barn").questions:
        assert Question.from_json(q.to_json()) == q


def test_generation_is_deterministic():
    a = prompt_questions("A man riding a horse on the beach at sunset.")
    assert a == prompt_questions("A man riding a horse on the beach at sunset.")


@pytest.mark.parametrize("lemma,form", [("ride", "riding"), ("sit", "sitting"), ("lie", "lying"), ("eat", "eating"),
                                        ("run", "running"), ("see", "seeing"), ("open", "opening"), ("play", "playing")])
def test_gerund(lemma, form):
    assert gerund(lemma) == form
