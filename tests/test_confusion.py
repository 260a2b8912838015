import numpy as np

from blindspot.error_analysis.search import confusion


def test_counts_match_hand_computation():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    predicted = np.array([0, 1, 1, 1, 0, 2, 0, 1, 2])
    counts = confusion.confusion_counts(labels, predicted, 3)
    assert counts.tolist() == [[1, 2, 0], [1, 1, 0], [1, 1, 2]]
    assert np.allclose(confusion.row_normalized(counts)[0], [1 / 3, 2 / 3, 0])


def test_top_pairs_rank_off_diagonal_cells():
    counts = np.array([[50, 7, 1], [3, 40, 0], [0, 9, 30]])
    pairs = confusion.top_confusions(counts, ['a', 'b', 'c'], k=2)
    assert [(p['true'], p['predicted'], p['count']) for p in pairs] == [
        ('c', 'b', 9),
        ('a', 'b', 7),
    ]
    assert np.isclose(pairs[0]['share_of_errors'], 9 / 20)
    assert np.isclose(pairs[0]['rate_in_true_class'], 9 / 39)


def test_empty_rows_and_no_errors():
    counts = np.array([[5, 0], [0, 0]])
    assert confusion.row_normalized(counts).tolist() == [[1.0, 0.0], [0.0, 0.0]]
    assert confusion.top_confusions(counts, ['0', '1']) == []
