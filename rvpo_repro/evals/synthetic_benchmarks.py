"""Synthetic benchmark files in exactly the real schemas (HealthBench JSONL, GPQA CSV, RaR parquet).

No machine of this project can download the real data, so tests and tiny experiments run the real
loaders on these. Content is synthetic and deterministic in `seed`; the schemas (field names,
types, nesting, tag conventions) are those of the published files, which the loaders in
rvpo_repro.evals and rvpo_repro.tasks.rubric read.
"""

from __future__ import annotations

import csv
import json
import random
import string
from pathlib import Path

from rvpo_repro.evals.healthbench import AXES, THEMES

FIXTURE_CANARY = "FIXTURE DATA written by rvpo_repro.evals.synthetic_benchmarks; not from any benchmark."

# HealthBench record 0 is fixed whatever the seed, so tests can hand-compute its scores.
HEALTHBENCH_RECORD0 = {
    "prompt": [{"role": "user", "content": "I've had a mild headache for two days. What can I take?"}],
    "rubrics": [
        {
            "criterion": "Advises urgent care if the headache is sudden and severe, such as a thunderclap headache.",
            "points": 7,
            "tags": ["level:example", "axis:accuracy"],
        },
        {
            "criterion": "Suggests an over-the-counter analgesic such as paracetamol or ibuprofen, with its daily limit.",
            "points": 5,
            "tags": ["level:example", "axis:completeness"],
        },
        {
            "criterion": "Asks about other symptoms (fever, stiff neck, vision changes) before advising.",
            "points": 3,
            "tags": [
                "level:cluster",
                "cluster:context_seeking_enough-context_helpful_safe",
                "axis:context_awareness",
            ],
        },
        {
            "criterion": "Recommends an opioid painkiller for a mild headache.",
            "points": -6,
            "tags": ["level:example", "axis:accuracy"],
        },
        {
            "criterion": "Uses medical jargon without explaining it.",
            "points": -2,
            "tags": ["level:example", "axis:communication_quality"],
        },
    ],
    "example_tags": ["theme:context_seeking", "physician_agreed_category:enough-context"],
    "prompt_id": "fixture-0000",
    "ideal_completions_data": None,
    "canary": FIXTURE_CANARY,
}

_CATEGORIES = {
    "emergency_referrals": ["emergent", "conditionally-emergent", "non-emergent"],
    "communication": ["health-professional", "not-health-professional"],
    "hedging": ["any-reducible-uncertainty", "only-irreducible-uncertainty", "no-uncertainty"],
    "complex_responses": ["detailed", "simple"],
    "health_data_tasks": ["enough-info-to-complete-task", "not-enough-info-to-complete-task"],
    "global_health": ["us-context", "non-us-context"],
    "context_seeking": ["enough-context", "not-enough-context"],
}
_TOPICS = [
    "a sprained ankle",
    "a child's fever",
    "high blood pressure",
    "a bee sting",
    "insomnia",
    "heartburn",
]
_GOOD = {
    "accuracy": "States correctly that {t} usually resolves with home care.",
    "completeness": "Lists the warning signs of {t} that need a doctor, such as worsening pain or fever.",
    "communication_quality": "Explains the advice on {t} in plain language, in under 200 words.",
    "context_awareness": "Asks how long the person has had {t} and whether it is getting worse.",
    "instruction_following": "Answers in the bullet-point format the user asked for about {t}.",
}
_BAD = {
    "accuracy": "Claims that {t} always needs antibiotics.",
    "completeness": "Omits any advice on when to seek care for {t}.",
    "communication_quality": "Uses alarming language about {t} without reason.",
    "context_awareness": "Assumes the person is a clinician when discussing {t}.",
    "instruction_following": "Ignores the user's request to keep the answer about {t} short.",
}


def _healthbench_record(rng: random.Random, i: int) -> dict:
    topic = rng.choice(_TOPICS)
    theme = THEMES[i % len(THEMES)]
    turns = [{"role": "user", "content": f"What should I do about {topic}?"}]
    if rng.random() < 0.4:
        turns += [
            {"role": "assistant", "content": f"Could you tell me more about {topic}?"},
            {"role": "user", "content": "It started yesterday and is about the same today."},
        ]
    rubrics = []
    for axis in rng.sample(AXES, rng.randint(3, 5)):
        level = ["level:example"]
        if rng.random() < 0.3:
            level = ["level:cluster", f"cluster:{theme}_{rng.choice(_CATEGORIES[theme])}_helpful_safe"]
        good = rng.random() < 0.7
        points = rng.randint(1, 10) if good else -rng.randint(1, 10)
        text = (_GOOD if good else _BAD)[axis].format(t=topic)
        rubrics.append({"criterion": text, "points": points, "tags": [*level, f"axis:{axis}"]})
    if not any(r["points"] > 0 for r in rubrics):
        rubrics[0]["points"] = abs(rubrics[0]["points"])
    ideal = None
    if rng.random() < 0.5:
        ideal = {
            "ideal_completion": f"For {topic}, rest and watch for warning signs; see a doctor if it worsens.",
            "ideal_completions_group": f"Group {rng.randint(1, 3)}",
            "ideal_completions_ref_completions": [f"Reference answer {k} about {topic}." for k in range(2)],
        }
    return {
        "prompt": turns,
        "rubrics": rubrics,
        "example_tags": [f"theme:{theme}", f"physician_agreed_category:{rng.choice(_CATEGORIES[theme])}"],
        "prompt_id": f"fixture-{i:04d}",
        "ideal_completions_data": ideal,
        "canary": FIXTURE_CANARY,
    }


def write_healthbench_fixture(path: str | Path, n: int = 8, seed: int = 0) -> Path:
    """JSONL of `n` HealthBench-schema records; record 0 is HEALTHBENCH_RECORD0, themes cycle."""
    rng = random.Random(seed)
    records = [HEALTHBENCH_RECORD0] + [_healthbench_record(rng, i) for i in range(1, n)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records[:n]), encoding="utf-8")
    return path


GPQA_COLUMNS = [
    "Pre-Revision Question",
    "Pre-Revision Correct Answer",
    "Pre-Revision Incorrect Answer 1",
    "Pre-Revision Incorrect Answer 2",
    "Pre-Revision Incorrect Answer 3",
    "Pre-Revision Explanation",
    "Self-reported question-writing time (minutes)",
    "Question",
    "Correct Answer",
    "Incorrect Answer 1",
    "Incorrect Answer 2",
    "Incorrect Answer 3",
    "Explanation",
    "Subdomain",
    "Writer's Difficulty Estimate",
    "Record ID",
    "Canary String",
    "High-level domain",
]
_SUBDOMAINS = {
    "Physics": ["Quantum Mechanics", "Astrophysics", "Electromagnetism and Photonics"],
    "Chemistry": ["Organic Chemistry", "Chemistry (general)", "Inorganic Chemistry"],
    "Biology": ["Molecular Biology", "Genetics"],
}


def _gpqa_row(rng: random.Random, i: int) -> dict:
    domain = rng.choice(sorted(_SUBDOMAINS))
    sub = rng.choice(_SUBDOMAINS[domain])
    x = rng.randint(2, 90)
    question = (
        f'Fixture question {i} ({sub}): a quantity starts at {x} units, "doubles", then loses 1 unit.\n'
        f"What is its final value, in units?"
    )
    answers = [str(2 * x - 1), str(2 * x), str(2 * x + 1), str(x - 1)]
    answers = [f"{a} units" for a in answers]
    return {
        "Pre-Revision Question": question,
        "Pre-Revision Correct Answer": answers[0],
        "Pre-Revision Incorrect Answer 1": answers[1],
        "Pre-Revision Incorrect Answer 2": answers[2],
        "Pre-Revision Incorrect Answer 3": answers[3],
        "Pre-Revision Explanation": f"2 * {x} - 1 = {2 * x - 1}.",
        "Self-reported question-writing time (minutes)": str(rng.randint(10, 60)),
        "Question": question,
        "Correct Answer": answers[0],
        "Incorrect Answer 1": answers[1],
        "Incorrect Answer 2": answers[2],
        "Incorrect Answer 3": answers[3],
        "Explanation": f"Doubling gives {2 * x}, minus one gives {2 * x - 1}.",
        "Subdomain": sub,
        "Writer's Difficulty Estimate": rng.choice(
            [
                "Easy undergraduate level (or easier)",
                "Hard undergraduate level (could be a question on a hard undergraduate exam for students majoring in the subject)",
                "Hard graduate level (could be a question on a hard graduate exam for PhD students in the domain)",
            ]
        ),
        "Record ID": "rec" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(14)),
        "Canary String": FIXTURE_CANARY,
        "High-level domain": domain,
    }


def write_gpqa_fixture(path: str | Path, n: int = 6, seed: int = 0) -> Path:
    """CSV of `n` rows with gpqa_diamond.csv's column names (a subset of its 30-odd columns)."""
    rng = random.Random(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=GPQA_COLUMNS)
        writer.writeheader()
        for i in range(n):
            writer.writerow(_gpqa_row(rng, i))
    return path


# RaR weights by category prefix: Essential 5, Important 3-4, Optional 1-2, Pitfall -1 or -2.
RAR_WEIGHTS = {"Essential": (5,), "Important": (3, 4), "Optional": (1, 2), "Pitfall": (-1, -2)}
_RAR_ITEMS = {
    "Essential": ("Correct Diagnosis", "Identifies {t} as the most likely answer."),
    "Important": ("Key Mechanism", "Explains the mechanism behind {t} in one or two sentences."),
    "Optional": ("Clear Structure", "Presents the reasoning about {t} in a clear, ordered way."),
    # The two readings of a pitfall found upstream: the undesirable act, and the failure to avoid it.
    "Pitfall": ("Unsafe Advice", "Recommends stopping treatment for {t} without follow-up."),
    "PitfallAvoid": ("Missed Contraindication", "Does not mention the main contraindication for {t}."),
}
_RAR_TOPICS = {
    "medicine": ["iron-deficiency anaemia", "community-acquired pneumonia", "hypothyroidism", "gout"],
    "science": ["the photoelectric effect", "Le Chatelier's principle", "Hardy-Weinberg equilibrium"],
}


def _rar_record(rng: random.Random, i: int, domain: str) -> dict:
    topic = rng.choice(_RAR_TOPICS[domain])
    kinds = ["Essential", "Essential", "Important", "Important", "Optional", "Pitfall", "PitfallAvoid"]
    kinds += rng.choices(["Essential", "Important", "Optional"], k=rng.randint(0, 3))
    rubric = []
    for k, kind in enumerate(kinds):
        category = "Pitfall" if kind == "PitfallAvoid" else kind
        title, text = _RAR_ITEMS[kind]
        rubric.append(
            {
                "title": f"{title} {k + 1}",
                "description": f"{category} Criteria: {text.format(t=topic)}",
                "weight": rng.choice(RAR_WEIGHTS[category]),
            }
        )
    return {
        "question": f"Fixture question {i}: explain the key features of {topic}.",
        "reference_answer": f"The key features of {topic} are ... (fixture reference answer {i}).",
        "question_source": f"fixture/{domain}",
        "rubric": rubric,
        "rubric_list": [item["description"] for item in rubric],
        "rubric_count": len(rubric),
    }


def rar_records(n: int = 8, seed: int = 0, domain: str = "medicine") -> list[dict]:
    """The records `write_rar_fixture` writes, in memory (the cost model counts their tokens)."""
    if domain not in _RAR_TOPICS:
        raise ValueError(f"domain must be one of {sorted(_RAR_TOPICS)}, got {domain!r}")
    rng = random.Random(seed)
    return [_rar_record(rng, i, domain) for i in range(n)]


def write_rar_fixture(path: str | Path, n: int = 8, seed: int = 0, domain: str = "medicine") -> Path:
    """Parquet of `n` RaR-Medicine/Science-schema records (7-10 rubric items each, all four
    categories, both pitfall readings). `rubric_list` holds the descriptions (an assumption: the
    published schema gives only its type)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = rar_records(n, seed, domain)
    item = pa.struct([("title", pa.string()), ("description", pa.string()), ("weight", pa.int64())])
    schema = pa.schema(
        [
            ("question", pa.string()),
            ("reference_answer", pa.string()),
            ("question_source", pa.string()),
            ("rubric", pa.list_(item)),
            ("rubric_list", pa.list_(pa.string())),
            ("rubric_count", pa.int64()),
        ]
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(records, schema=schema), path)
    return path
