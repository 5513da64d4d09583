"""Votes and labels as numbers (arrays, the label model, LF votes) and as the API's words. Pure Python."""

PRESENT, ABSENT, ABSTAIN = 1, -1, 0
VOTE_WORDS = {PRESENT: "PRESENT", ABSENT: "ABSENT", ABSTAIN: "ABSTAIN"}
WORD_VOTES = {word: value for value, word in VOTE_WORDS.items()}


def vote_word(value) -> str:
    return VOTE_WORDS[int(value)]
