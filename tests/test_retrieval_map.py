"""The revisited Easy/Medium/Hard protocol: hand-worked answers, and equality with the per-query loop."""
import math

import numpy as np
import pytest
from revisitop_loop import revisited_map_loop, revisited_map_revisitop

from cwl_lib.retrieval import map_table, rank, revisited_map


def _scores_from_order(order, n):
    """A score row whose decreasing order is ``order``."""
    s = np.zeros(n)
    s[list(order)] = np.linspace(1.0, 0.1, len(order))
    return s


@pytest.fixture
def two_queries():
    n = 6
    # q0: a junk image ranked first, the only positive second; no hard positive at all.
    # q1: an easy and a hard positive, the hard one ranked first.
    scores = np.stack([_scores_from_order([0, 1, 2, 3, 4, 5], n), _scores_from_order([3, 1, 0, 2, 4, 5], n)])
    gnd = [{"easy": [2], "hard": [], "junk": [0]}, {"easy": [0], "hard": [3], "junk": []}]
    return scores, gnd


def test_junk_before_a_positive_and_a_query_without_hard_positive(two_queries):
    scores, gnd = two_queries
    res = revisited_map(scores, gnd)
    # q0 easy: junk 0 removed -> ranking 1, 2, ...: positive at 0-based rank 1, AP = (0/1 + 1/2) / 2
    # q1 easy: hard 3 ignored -> ranking 1, 0, ...: positive at rank 1 again, AP = 0.25
    assert res["easy"]["ap"] == pytest.approx([0.25, 0.25])
    # q1 medium: positives at ranks 0 and 2: ((1 + 1) / 2 + (1/2 + 2/3) / 2) / 2
    assert res["medium"]["ap"] == pytest.approx([0.25, (1 + (0.5 + 2 / 3) / 2) / 2])
    assert res["medium"]["map"] == pytest.approx((0.25 + (1 + (0.5 + 2 / 3) / 2) / 2) / 2)
    # q0 has no hard positive: left out of the Hard mean, which is q1's AP alone (easy 0 ignored)
    assert math.isnan(res["hard"]["ap"][0])
    assert res["hard"]["queries"] == 1 and res["hard"]["map"] == pytest.approx(1.0)
    assert res["easy"]["queries"] == 2


def test_precision_at_k_caps_k_at_the_last_positive_like_revisitop(two_queries):
    scores, gnd = two_queries
    res = revisited_map(scores, gnd, kappas=(1, 5))
    assert res["easy"]["mp@k"][1] == pytest.approx(0.0)
    assert res["easy"]["mp@k"][5] == pytest.approx(0.5)  # k capped at 2, one positive in it
    assert res["medium"]["mp@k"][1] == pytest.approx(0.5)
    assert res["medium"]["mp@k"][5] == pytest.approx((0.5 + 2 / 3) / 2)


def test_ties_keep_the_lower_database_index_first():
    scores = np.array([[0.5, 0.9, 0.9, 0.1]])
    assert rank(scores).tolist() == [[1, 2, 0, 3]]
    behind = revisited_map(scores, [{"easy": [2]}])
    ahead = revisited_map(scores, [{"easy": [1]}])
    assert behind["easy"]["map"] == pytest.approx(0.25)
    assert ahead["easy"]["map"] == pytest.approx(1.0)


def test_integer_ranks_give_the_same_result_as_scores(two_queries):
    scores, gnd = two_queries
    a = revisited_map(scores, gnd)
    b = revisited_map(rank(scores), gnd)
    for s in a:
        assert a[s]["map"] == pytest.approx(b[s]["map"])


def test_perfect_and_reversed_rankings():
    n = 50
    gnd = [{"easy": [0, 1], "hard": [2, 3], "junk": [4]}]
    best = revisited_map(np.arange(n)[None, :], gnd, n_db=n)
    assert all(best[s]["map"] == pytest.approx(1.0) for s in ("easy", "medium", "hard"))
    worst = revisited_map(np.arange(n)[::-1][None, :].copy(), gnd, n_db=n)
    assert worst["medium"]["map"] < 0.1
    assert map_table(best)["mean"] == pytest.approx(100.0)


def _random_problem(rng, q, n):
    scores = rng.standard_normal((q, n)).round(1)  # rounding makes ties frequent
    gnd = []
    for _ in range(q):
        perm = rng.permutation(n)
        ne, nh, nj = rng.integers(0, 6, size=3)
        gnd.append({"easy": perm[:ne].tolist(), "hard": perm[ne:ne + nh].tolist(),
                    "junk": perm[ne + nh:ne + nh + nj].tolist()})
    return scores, gnd


@pytest.mark.parametrize("seed", range(6))
def test_equals_the_per_query_loop_on_random_problems(seed):
    rng = np.random.default_rng(seed)
    scores, gnd = _random_problem(rng, q=int(rng.integers(1, 12)), n=int(rng.integers(5, 80)))
    fast = revisited_map(scores, gnd, kappas=(1, 3, 10))
    loop = revisited_map_loop(scores, gnd, kappas=(1, 3, 10))
    reference = revisited_map_revisitop(scores, gnd, kappas=(1, 3, 10))
    for s in ("easy", "medium", "hard"):
        np.testing.assert_allclose(fast[s]["ap"], reference[s]["ap"], rtol=0, atol=1e-12)
        for slow in (loop, reference):
            assert fast[s]["queries"] == slow[s]["queries"]
            if slow[s]["queries"]:
                assert fast[s]["map"] == pytest.approx(slow[s]["map"], abs=1e-12)
                for k in (1, 3, 10):
                    assert fast[s]["mp@k"][k] == pytest.approx(slow[s]["mp@k"][k], abs=1e-12)


def test_equals_the_loop_with_truncated_rankings():
    rng = np.random.default_rng(7)
    scores, gnd = _random_problem(rng, q=5, n=40)
    top = rank(scores)[:, :15]
    fast = revisited_map(top, gnd, n_db=40)
    slow = revisited_map_revisitop(top, gnd)
    loop = revisited_map_loop(top, gnd)
    for s in ("easy", "medium", "hard"):
        np.testing.assert_allclose(fast[s]["ap"], slow[s]["ap"], atol=1e-12)
        assert fast[s]["map"] == pytest.approx(loop[s]["map"], abs=1e-12)


def test_bad_inputs_say_what_is_wrong():
    with pytest.raises(ValueError, match="one row per query"):
        revisited_map(np.zeros((3, 4)), [{"easy": [0]}])
    with pytest.raises(ValueError, match="outside a database"):
        revisited_map(np.zeros((1, 4)), [{"easy": [9]}])
    with pytest.raises(ValueError, match="NaN"):
        revisited_map(np.full((1, 4), np.nan), [{"easy": [0]}])


def test_duplicates_count_twice_as_in_revisitops_compute_map():
    """An image listed twice in ``easy``, in both ``easy`` and ``hard``, or in both ``hard`` and ``junk``."""
    rng = np.random.default_rng(3)
    scores = rng.standard_normal((3, 30))
    gnd = [{"easy": [4, 4, 9], "hard": [11], "junk": [2]},
           {"easy": [5, 7], "hard": [7, 12], "junk": []},  # 7 is easy and hard: twice a Medium positive
           {"easy": [1], "hard": [3], "junk": [3, 8]}]  # 3 is a Hard positive and ignored
    official = revisited_map_revisitop(scores, gnd)
    ours = revisited_map(scores, gnd)
    for s in ("easy", "medium", "hard"):
        np.testing.assert_allclose(ours[s]["ap"], official[s]["ap"], atol=1e-12)
    # count_duplicates=False: as revisitop on lists without the repeated entry
    once = revisited_map(scores, gnd, count_duplicates=False)
    single = revisited_map_revisitop(scores, [{"easy": [4, 9], "hard": [11], "junk": [2]},
                                              {"easy": [5, 7], "hard": [12], "junk": []}, gnd[2]])
    assert once["easy"]["ap"][0] == pytest.approx(single["easy"]["ap"][0], abs=1e-12)
    assert once["medium"]["ap"][1] == pytest.approx(single["medium"]["ap"][1], abs=1e-12)
    # the repeated positive is found once but counted twice: a lower AP than counting it once
    assert ours["easy"]["ap"][0] < once["easy"]["ap"][0]
    assert ours["medium"]["ap"][1] < once["medium"]["ap"][1]
    assert ours["hard"]["ap"][2] == pytest.approx(once["hard"]["ap"][2])  # no repeated Hard positive


def test_without_duplicates_both_conventions_agree():
    rng = np.random.default_rng(4)
    scores, gnd = _random_problem(rng, q=6, n=50)
    a, b = revisited_map(scores, gnd), revisited_map(scores, gnd, count_duplicates=False)
    for s in ("easy", "medium", "hard"):
        np.testing.assert_allclose(a[s]["ap"], b[s]["ap"], atol=1e-12)


def test_ties_rank_the_lower_index_first_where_revisitops_argsort_is_arbitrary():
    """revisitop ranks with numpy's default (unstable) argsort; this library breaks ties by index."""
    from revisitop_loop import revisitop_ranks

    rng = np.random.default_rng(0)
    for _ in range(200):  # find tied scores that numpy's default sort puts out of index order
        scores = rng.integers(0, 3, size=(1, 40)).astype(float)
        if not np.array_equal(revisitop_ranks(scores), rank(scores)):
            break
    else:
        pytest.skip("numpy's default argsort happened to be stable on every draw")
    gnd = [{"easy": [int(i) for i in np.nonzero(scores[0] == 2)[0][-3:]], "junk": [int(np.argmax(scores[0]))]}]
    ours = revisited_map(scores, gnd)
    stable = revisited_map_revisitop(scores, gnd, ties="stable")
    np.testing.assert_allclose(ours["easy"]["ap"], stable["easy"]["ap"], atol=1e-12)
    # without ties the two orders are the same ranking, so the same numbers
    distinct = rng.permutation(40).astype(float)[None, :]
    assert np.array_equal(revisitop_ranks(distinct), rank(distinct))
    np.testing.assert_allclose(revisited_map(distinct, gnd)["medium"]["ap"],
                               revisited_map_revisitop(distinct, gnd, ties="revisitop")["medium"]["ap"], atol=1e-12)
