"""Tokenizer, RRF and rewriting: the deterministic parts of retrieval."""

from __future__ import annotations

import pytest

from engine.retrieval.fusion import rrf
from engine.retrieval.rewrite import Exchange, Rewriter, extract_entities, strip_filler
from engine.retrieval.text import clauses, split_identifier, split_identifiers, terms


class TestTokenizer:
    @pytest.mark.parametrize(
        ("word", "parts"),
        [
            ("get_pod_logs", ["get", "pod", "logs"]),
            ("rollout-restart", ["rollout", "restart"]),
            ("getPodLogs", ["get", "pod", "logs"]),
            ("HTTPServerError", ["http", "server", "error"]),
            ("github.compare_commits", ["github", "compare", "commits"]),
            ("k8s.describeNode", ["k8s", "describe", "node"]),
        ],
    )
    def test_splits_identifier_styles(self, word: str, parts: list[str]) -> None:
        assert split_identifier(word) == parts

    def test_joined_form_kept_for_exact_name_queries(self) -> None:
        assert split_identifiers("kubernetes.rollout_undo").split() == [
            "kubernetes",
            "rollout",
            "undo",
            "kubernetesrolloutundo",
        ]

    def test_terms_drop_filler(self) -> None:
        assert terms("Can you please check the logs of payments_api?") == ["logs", "payments", "api", "paymentsapi"]

    def test_clauses_split_separate_needs_but_not_lists(self) -> None:
        assert clauses("scale the checkout deployment to 5 replicas and post an update in the incident channel") == [
            "scale the checkout deployment to 5 replicas",
            "post an update in the incident channel",
        ]
        assert len(clauses("cook with beef, tomatoes, onions and garlic")) == 1


class TestRRF:
    def test_scores_are_weighted_reciprocal_ranks(self) -> None:
        fused = dict(rrf([["a", "b"], ["b", "c"]], [1.0, 2.0], k=60))
        assert fused["a"] == pytest.approx(1 / 61)
        assert fused["b"] == pytest.approx(1 / 62 + 2 / 61)
        assert fused["c"] == pytest.approx(2 / 62)

    def test_order_and_ties(self) -> None:
        assert [d for d, _ in rrf([["x", "y"], ["y", "x"]])] == ["x", "y"]  # tie: first seen wins
        assert [d for d, _ in rrf([["a", "b", "c"], ["c", "b", "a"], ["b"]])][0] == "b"

    def test_duplicate_in_one_ranking_counts_once(self) -> None:
        assert dict(rrf([["a", "a"]]))["a"] == pytest.approx(1 / 61)

    def test_weight_count_must_match(self) -> None:
        with pytest.raises(ValueError, match="2 rankings but 1 weights"):
            rrf([["a"], ["b"]], [1.0])


class TestRewrite:
    HISTORY = [
        Exchange("user", "payments-api pods in namespace prod keep crashlooping", 1),
        Exchange("call", '{"name": "kubernetes.list_pods", "arguments": {"namespace": "prod"}}', 1),
        Exchange("tool", "NAME                      READY STATUS\npayments-api-7d9f8-x2k4b  0/1   CrashLoopBackOff", 1),
        Exchange("user", "is the checkout deployment healthy?", 2),
    ]

    def test_restart_it_resolves_to_latest_entity(self) -> None:
        r = Rewriter().rewrite("ok, restart it please", self.HISTORY[:3])
        assert r.query == "restart payments-api"
        assert r.resolved == {"it": "payments-api"}

    def test_it_is_the_thing_not_the_place_the_turn_named_first(self) -> None:
        history = [Exchange("user", "theres a pod in ns batch called migrate-once-x7 running for days", 1)]
        assert Rewriter().rewrite("what's it printing", history).query == "what's migrate-once-x7 printing"
        # A turn that named only a place: "it" is that place.
        assert (
            Rewriter().rewrite("what's running in it", [Exchange("user", "ns batch looks odd", 1)]).query
            == "what's running in namespace batch"
        )

    def test_the_other_one(self) -> None:
        r = Rewriter().rewrite("restart the other one", self.HISTORY)
        assert "payments-api" in r.query and "checkout" not in r.query

    def test_what_about_swaps_the_entity_in_the_previous_request(self) -> None:
        r = Rewriter().rewrite("what about staging?", self.HISTORY[:3])
        assert r.query == "payments-api pods in namespace staging keep crashlooping"

    def test_message_with_its_own_entity_is_left_alone(self) -> None:
        r = Rewriter().rewrite("show logs of deployment/orders", self.HISTORY)
        assert r.query == "show logs of deployment/orders"
        assert r.resolved == {}

    def test_context_keywords_come_from_recent_turns(self) -> None:
        r = Rewriter().rewrite("and now?", self.HISTORY)
        assert "crashlooping" in r.context.split() and "checkout" in r.context.split()

    def test_and_with_a_verb_is_a_new_command_not_ellipsis(self) -> None:
        history = [Exchange("user", "put search-api on 10 replicas by hand", 1)]
        assert Rewriter().rewrite("and kick metrics-server", history).query == "and kick metrics-server"
        assert Rewriter().rewrite("and staging?", history).query != "and staging?"

    def test_asking_about_a_kind_of_thing_keeps_the_new_message(self) -> None:
        # "and the pods?" asks about pods, not about another thing in place of payments-api: the
        # new turn's query is its own words, with the entity the conversation is about added.
        history = [Exchange("user", "checkout-api in namespace shop restarts after the deploy", 1)]
        q = Rewriter().rewrite("and the pods?", history).query
        assert q.startswith("and the pods?") and "restarts after the deploy" not in q and "checkout-api" in q

    def test_filler_and_entities(self) -> None:
        assert strip_filler("Hey, could you please check the error rate, thanks!") == "check the error rate"
        names = {
            (e.name, e.kind) for e in extract_entities("rollback deployment/payments-api in -n prod after PR #123")
        }
        assert names == {("payments-api", "deployment"), ("prod", "namespace"), ("123", "pr")}


@pytest.mark.parametrize(
    "text,report",
    [
        ("is the ledger statefulset healthy", True),
        ("the reports job failed with exit code 1", True),
        ("payments-api pods keep restarting", True),
        ("why did it restart?", True),
        ("ok, so restart it for now", False),
        ("now move everything off it", False),
        ("tell the platform channel", False),
        ("quiesce worker-3", True),
        ("yeah thats it. roll orders-api back to 56", False),
        ("known issue, reindex job running. shut it up for 2h", False),
        ("the pods are fine? restart them anyway", False),
    ],
)
def test_is_report_tells_questions_and_symptoms_from_commands(text: str, report: bool) -> None:
    from engine.retrieval.text import is_report

    assert is_report(text) is report
    if text == "quiesce worker-3":
        assert is_report(text, {"quiesce"}) is False  # a catalogue verb opens a command


def test_stem_meets_inflections() -> None:
    from engine.retrieval.text import stem

    assert stem("restarted") == stem("restarting") == stem("restart")
    assert stem("scaling") == stem("scale")
    assert stem("stopped") == stem("stop")


@pytest.mark.parametrize(
    "text,phrases",
    [
        ("yeah thats it. roll orders-api back to 56", ["roll back"]),
        ("known issue, reindex job running. shut it up for 2h", ["shut up"]),
        ("ok back out to the last revision", ["back out"]),
        ("tell #incidents checkout is OOMing at 512Mi", ["tell"]),
        ("#db-oncall: pg-replica-2 disk at 96%, need a dba", ["post"]),
        ("#db-oncall is quiet tonight", []),
        ("scale it up and tell the channel", ["scale up", "tell"]),
        ("why did it restart?", []),
        ("tell me why the pod crashed", []),
        ("check inventory-svc", []),
        ("pull up the configmap its mounting", []),
        ("pull the bad image and push it again", ["pull", "push"]),
        ("checkout is slow", []),
    ],
)
def test_command_phrases_are_the_verbs_of_commands(text: str, phrases: list[str]) -> None:
    from engine.retrieval.text import command_phrases

    assert command_phrases(text) == phrases


@pytest.mark.parametrize(
    "text,words",
    [
        ("tell #checkout we will tune the monitor", "channel"),
        ("since when is p99 that high", "start end range"),
        ("error rate in the past hour", "start end range"),
        ("PR #12 broke it", "pull request number"),
        (
            'disk now: 1 - node_filesystem_avail_bytes{mountpoint="/data"} / node_filesystem_size_bytes',
            "promql expression",
        ),
        ("histogram_quantile(0.99, sum by (le)(rate(x_bucket[5m])))", "duration since window promql expression"),
        ("dd pls: avg:trace.http.request.duration{service:cart} same window", "datadog metric query"),
        ("the queue {big} is stuck", ""),
    ],
)
def test_value_types_name_the_parameters_a_request_fills(text: str, words: str) -> None:
    from engine.retrieval.text import value_types

    assert value_types(text) == words


def test_exact_value_types_are_told_from_loose_ones() -> None:
    from engine.retrieval.text import typed_mentions

    typed = typed_mentions("post in #ops that the last hours were bad")
    assert [(w, exact) for _, w, exact in typed] == [("start end range", False), ("channel", True)]


def _turn(call: str, output: str, turn: int, user: str = "ok") -> list[Exchange]:
    import json

    return [
        Exchange("user", user, turn),
        Exchange("call", json.dumps({"name": call, "arguments": {}}), turn),
        Exchange("tool", output, turn),
    ]


class TestTypedMentions:
    """An opaque id the user repeats gets the kind it had earlier, so retrieval sees what it is."""

    def test_an_id_an_output_typed_gets_its_kind(self) -> None:
        h = _turn(
            "kubernetes.describe_pod", "coord/zk-2 events: FailedAttachVolume Multi-Attach error (node ip-10-3-4-5)", 1
        )
        assert Rewriter().rewrite("is ip-10-3-4-5 even alive", h).query == "is node ip-10-3-4-5 even alive"

    def test_an_id_from_a_listing_gets_the_listed_resource(self) -> None:
        h = _turn("github.list_deployments", "id=90233 env=production sha=e51a7c3; id=90220 env=staging", 1)
        # (the terse follow-up also gains the newest entity, as before)
        assert Rewriter().rewrite("did 90233 go green", h).query.startswith("did deployment 90233 go green")

    def test_the_x_one_names_the_listed_resource(self) -> None:
        h = _turn(
            "datadog.list_monitors",
            "Alert: 'Disk usage >90% on batch hosts' id=88213; Alert: 'payments-gw 5xx rate' id=77102",
            1,
        )
        q = Rewriter().rewrite("the disk one has been flapping all nite. show me it", h).query
        assert q.startswith("the disk monitor has been flapping")

    def test_no_kind_without_evidence(self) -> None:
        # A worded name says what it is; a get/describe output names many things; two calls in
        # one turn leave the source of an id unknown.
        h = _turn("kubernetes.list_deployments", "prometheus-server 0/1; grafana 1/1", 1)
        assert Rewriter().rewrite("why is prometheus-server not ready", h).query == "why is prometheus-server not ready"
        h = _turn("kubernetes.get_pod_logs", "connecting to cache-7 failed", 1)
        assert (
            "cache-7" in Rewriter().rewrite("is cache-7 up", h).query
            and "log" not in Rewriter().rewrite("is cache-7 up", h).query
        )
        import json

        two = [
            *_turn("github.list_deployments", "id=90233 env=production", 1),
            Exchange("call", json.dumps({"name": "github.list_commits"}), 1),
        ]
        assert "deployment" not in Rewriter().rewrite("did 90233 go green", two).query
