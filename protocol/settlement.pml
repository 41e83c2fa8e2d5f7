/*
 * The settlement protocol of docs/protocol.md, for ONE payment, checked by spin.
 *
 * Actors: two processor deliveries, the reconciler, the sweeper, an operator, the outcome
 * consumer. The provider (Stripe: PaymentIntents, refunds, requests in flight) and time (the
 * sweeper's window, idempotency-key pruning) are one process; a lease lapsing is part of the
 * next claim. protocol/README.md says what is abstracted and why, and maps every transition
 * to the code that performs it.
 *
 * Preprocessor flags (protocol/check.py sets them):
 *   PROP=1,2,3,5          the property the quiescence monitor asserts (safety runs)
 *   LIVENESS              property 4, termination (LTL under weak fairness)
 *   NO_DB_FENCE           docs/protocol.md as written: a database settlement is not fenced by
 *                         the claim (the hole this model found; README "The hole")
 *   F1_NO_CLAIM           variant: the operator refunds and releases without the claim (F1)
 *   LIST_AS_PROOF         variant: the reconciler rolls back when a lookup shows no charge
 *   CONFIRM_BEFORE_LOGGED variant: the processor confirms an intent before logging its id
 *   NO_REFUND_WRITE_AHEAD variant: the processor refunds without logging REFUND_REQUESTED (F2)
 *   NO_STEP_OUTBOX        variant: settlement steps are written after the commit (F3)
 *   LEASE_NEVER_LAPSES    variant: a dead holder's lease never lapses (for property 4)
 *   UNORDERED_REGISTRATION variant of the fix: registration ignores the claim numbers (the
 *                         last registration on the row wins)
 *   REFUND_WITHIN_WINDOW_ONLY variant: the sweeper follows a pending refund only during its
 *                         late-charge window
 *
 * Every visible transition prints "@@<actor>|<action>|<state>" (printf does nothing during
 * verification; `spin -t` replays it); check.py turns these lines into a timeline.
 */

#ifndef PROP
#define PROP 0
#endif

/* actors; 0 is the provider and the clock */
#define NOBODY 0
#define P1 1
#define P2 2
#define REC 3
#define SWP 4
#define OPR 5
#define CON 6

/* a PaymentIntent's status */
#define I_NONE 0
#define I_REQ_CONF 1    /* requires_confirmation: created, no money moved */
#define I_SUCCEEDED 2   /* capture_method=automatic: the money is taken */
#define I_REQ_PM 3      /* requires_payment_method: the confirm was declined */
#define I_CANCELED 4

/* the refund of the logged intent */
#define R_NONE 0
#define R_PENDING 1
#define R_SUCCEEDED 2
#define R_FAILED 3

/* the payment row in the initiator's database */
#define PENDING 0
#define COMPLETED 1
#define ROLLED_BACK 2
#define NEEDS_ATTENTION 3

/* saga-log steps (docs/protocol.md §3), one bit each: a step's identity is its name */
#define S_RECEIVED 1
#define S_INTENT_CREATED 2
#define S_CHARGED 4
#define S_CHARGE_DECLINED 8
#define S_CANCEL_REQUESTED 16
#define S_CHARGE_CANCELED 32
#define S_REFUND_REQUESTED 64
#define S_REFUNDED 128
#define S_REFUND_FAILED 256
#define S_COMPLETED 512
#define S_FAILED 1024
#define S_CAPTURED 2048
#define S_COMPENSATED 4096
#define S_NEEDS_ATTENTION 8192

#define has(s) ((steps & (s)) != 0)
#define OUTCOME (S_COMPLETED | S_FAILED | S_REFUNDED)

/* the payment's intent, and a second one only if its create key was pruned (24 h) first */
#define NI 2

/* ---------------------------------------------------------------- the provider */
byte intent[NI];        /* status of each PaymentIntent created for the payment */
byte created;           /* how many intents exist */
bool key_live;          /* create-<payment_id> still maps to the last intent created */
byte refund;            /* the refund of the logged intent */
bool flc[NI];           /* a confirm of intent i sent and not yet applied */
bool flx;               /* a cancel of the logged intent in flight */
bool flr;               /* a refund of the logged intent in flight */

/* ---------------------------------------------------------------- the saga log (Firestore) */
short steps;            /* steps_done */
byte li;                /* intent_id: the logged intent (meaningful once INTENT_CREATED) */
byte owner;             /* lease_owner: the claim's holder, or NOBODY */
bool fenced;            /* an initiator actor claimed: processor deliveries stop for good */
bool published;         /* outcome_published (and the outcome event is in Pub/Sub) */
bool refund_final;      /* the logged refund is known to have succeeded */

/* ---------------------------------------------------------------- the initiator's database */
byte status = PENDING;
byte hold_moves;        /* captures + releases committed (property 3: at most one) */
short outbox;           /* step-outbox rows not yet in Firestore (step bits) */
byte settling_claim;    /* payments.settling_claim: the claim number registered on the row */

/* ---------------------------------------------------------------- claim numbers (the fix) */
/* Every initiator claim takes claim_seq + 1 from the saga-log document. Only the order of the
 * numbers is ever compared, and a new one is above all others, so the model keeps the numbers
 * still held (the row's, the reconciler's and the operator's current claims) renumbered
 * 1, 2, 3 in their order: an exact abstraction of the unbounded counter (README "Claim
 * numbers"). The sweeper's and the consumer's claims register numbers too, but only on a
 * payment already settled, where every settlement is refused by its status: not kept. */
byte rec_seq;           /* the reconciler's current claim number, 0 between passes */
byte opr_seq;           /* the operator's current claim number, 0 between actions */
byte rank_row, rank_rec, rank_opr;    /* renumber()'s scratch: 0 between steps (BFS forbids hidden) */

#ifdef PROBES
byte settler;           /* probes only: who committed the settlement */
bool late_refund;       /* probes only: the consumer's late-charge refund ran */
bool superseded;        /* probes only: the row refused a superseded claim */
#define SETTLED_BY(me) settler = me
#define SUPERSEDED superseded = true
#else
#define SETTLED_BY(me) skip
#define SUPERSEDED skip
#endif

/* ---------------------------------------------------------------- time */
bool window_open = true;/* the sweeper's LATE_CHARGE_WINDOW for this payment */

#ifdef LIVENESS
bool healthy;           /* from now on the provider answers, nothing crashes or pauses */
bool holder_dead;       /* the claim's holder crashed: its lease lapses all the same */
#define FAULTS (!healthy)
#ifdef LEASE_NEVER_LAPSES
#define LAPSE_OK (!healthy)
#else
#define LAPSE_OK (!healthy || holder_dead)   /* a lease lapses: its holder paused or died */
#endif
#define DIED holder_dead = true
#define LIVE holder_dead = false
#else
/* safety runs: every fault stays possible to the end */
#define FAULTS true
#define LAPSE_OK true
#define DIED skip
#define LIVE skip
#endif

#define terminal (status == COMPLETED || status == ROLLED_BACK || status == NEEDS_ATTENTION)
#define refund_open (has(S_REFUND_REQUESTED) && !has(S_REFUND_FAILED) && !refund_final)
/* A lease lapsing is observable only through the next claim, so the lapse is part of the claim:
 * a claimer may take the lease of a holder that paused (or died) past it. */
#define CLAIM_FREE (owner == NOBODY || LAPSE_OK)

/* one timeline line: "@@<actor>|<action>|<state>"; check.py decodes the state */
#define SHOW printf("%d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d\n", \
    intent[0], intent[1], refund, flc[0], flc[1], flx, flr, li, steps, owner, \
    fenced, published, status, outbox, settling_claim, rec_seq, opr_seq, window_open, refund_final, \
    hold_moves)

/* an actor may crash before any step while faults happen */
#define CRASH(where) if :: FAULTS -> goto where :: true -> skip fi

/* a conditional Firestore write: only the claim's holder writes; one that lost it stops */
#define MUST_OWN(me, lost) if :: owner == me -> skip :: else -> goto lost fi

/* ---------------------------------------------------------------- the provider's effects */
inline apply_confirm(i) {
    flc[i] = false;
    if
    :: intent[i] == I_REQ_CONF -> if :: intent[i] = I_SUCCEEDED :: intent[i] = I_REQ_PM fi
    :: else -> skip     /* a same-key replay: the intent as it is */
    fi
}

inline apply_cancel() {
    flx = false;
    if
    :: intent[li] == I_REQ_CONF || intent[li] == I_REQ_PM -> intent[li] = I_CANCELED
    :: else -> skip     /* refused (it succeeded) or canceled already */
    fi
}

inline apply_refund() {
    flr = false;
    if
    :: intent[li] == I_SUCCEEDED && refund == R_NONE -> if :: refund = R_PENDING :: refund = R_SUCCEEDED fi
    :: else -> skip     /* a replay; never above the captured amount */
    fi
}

/* POST /v1/payment_intents with create-<payment_id>: the same intent while the key lives */
inline create_intent(idx) {
    if
    :: key_live -> idx = created - 1
    :: else -> idx = created; intent[idx] = I_REQ_CONF; created++; key_live = true
    fi
}

/* A write whose steps are all logged already is a replay: detected, nothing written, no
 * claim checked. Any other write is conditional on the claim. */
#define WRITE(me, s, lost) \
    if \
    :: (steps & (s)) == (s) -> skip \
    :: else -> MUST_OWN(me, lost); steps = steps | (s) \
    fi

/* Granularity. An actor's steps between two points where others can observe a difference are
 * one transition (README "Granularity"): a write-ahead step and the call it announces (a crash
 * between them is the call lost); a definitive answer and the fact step that records it (a
 * pause between them is the answer lost and the request applied: the next attempt's same-key
 * replay gives the same answer). A call without an answer (timeout, lost answer) leaves the
 * request in flight; the provider applies it later or never. */

/* ---------------------------------------------------------------- database settlements */
/* Under the payment row's lock; the inbox makes a repeat a no-op and a settled payment
 * REJECTS. The fix: a claim holder's settlement commits only while its claim number is the one
 * registered on the row (payments.settling_claim), so a holder paused past its lease cannot
 * settle: its write is refused and alerted (ClaimSuperseded). */

/* the rank of claim number x among those held (0: none) */
#define RANK(x) ((x) == 0 -> 0 : 1 + ((rank_row != 0 && rank_row < (x)) -> 1 : 0) \
    + ((rank_rec != 0 && rank_rec < (x) && rank_rec != rank_row) -> 1 : 0) \
    + ((rank_opr != 0 && rank_opr < (x) && rank_opr != rank_row && rank_opr != rank_rec) -> 1 : 0))
inline renumber() {     /* inside an atomic step */
    rank_row = settling_claim; rank_rec = rec_seq; rank_opr = opr_seq;
    settling_claim = RANK(rank_row); rec_seq = RANK(rank_rec); opr_seq = RANK(rank_opr);
    rank_row = 0; rank_rec = 0; rank_opr = 0
}

/* the claim transaction: claim_seq + 1, above every number held; a pass or an action that
 * ends forgets its number (in its last step) */
#define MAX2(a, b) ((a) > (b) -> (a) : (b))
#define NEXT_SEQ (MAX2(settling_claim, MAX2(rec_seq, opr_seq)) + 1)
#define SEQ_OF(me) (me == REC -> rec_seq : opr_seq)
#define FORGET_SEQ(seq) seq = 0; renumber()

#ifdef NO_DB_FENCE
#define TAKE_SEQ(seq) skip
#define FENCE_OK(me) true
#define REGISTER(me, refused) skip
#else
#define TAKE_SEQ(seq) seq = NEXT_SEQ; renumber()
#define FENCE_OK(me) (settling_claim == SEQ_OF(me))
/* UPDATE payments SET settling_claim = seq WHERE settling_claim < seq */
#ifdef UNORDERED_REGISTRATION
#define NEWER_THAN_REGISTERED(me) true      /* the variant: SET without the WHERE */
#else
#define NEWER_THAN_REGISTERED(me) (settling_claim < SEQ_OF(me))
#endif
#define REGISTER(me, refused) \
    if \
    :: NEWER_THAN_REGISTERED(me) -> settling_claim = SEQ_OF(me); renumber() \
    :: else -> SUPERSEDED; \
        printf("@@%d|registration refused: a newer claim is on the row (alert)|", me); SHOW; goto refused \
    fi
#endif

#ifdef NO_STEP_OUTBOX
#define OUTBOX(s) skip
#else
#define OUTBOX(s) outbox = outbox | (s)
#endif

#if PROP == 3
#define CHECK_HOLD assert(hold_moves <= 1)
#else
#define CHECK_HOLD skip
#endif

inline release_claim(me) {
    if
    :: owner == me -> owner = NOBODY
    :: else -> skip
    fi
}

/* the step-outbox row is committed with the change, so the claim goes in the same step;
 * without the outbox (variant) the actor writes the step itself after the commit */
#ifdef NO_STEP_OUTBOX
#define STATUS_STEP (status == COMPLETED -> S_CAPTURED : (status == ROLLED_BACK -> S_COMPENSATED : \
    (status == NEEDS_ATTENTION -> S_NEEDS_ATTENTION : 0)))
#define RELEASE_AFTER_COMMIT(me) skip
#define LATE_STEP(me, where) CRASH(where); \
    atomic { steps = steps | STATUS_STEP; release_claim(me); \
        printf("@@%d|writes the settlement step after the commit|", me); SHOW }
#else
#define RELEASE_AFTER_COMMIT(me) release_claim(me)
#define LATE_STEP(me, where) skip
#endif

inline db_capture(me, fence) {
    if
    :: (status == PENDING || status == NEEDS_ATTENTION) && (!fence || FENCE_OK(me)) ->
        status = COMPLETED; hold_moves++; OUTBOX(S_CAPTURED); CHECK_HOLD; SETTLED_BY(me);
        RELEASE_AFTER_COMMIT(me);
        printf("@@%d|DB: captures the hold, payment completed|", me); SHOW
    :: (status == PENDING || status == NEEDS_ATTENTION) && fence && !FENCE_OK(me) ->
        RELEASE_AFTER_COMMIT(me); SUPERSEDED;
        printf("@@%d|DB: capture refused: a newer claim is on the row (alert)|", me); SHOW
    :: else -> RELEASE_AFTER_COMMIT(me); printf("@@%d|DB: capture REJECTED|", me); SHOW
    fi
}

inline db_release(me, fence) {
    if
    :: (status == PENDING || status == NEEDS_ATTENTION) && (!fence || FENCE_OK(me)) ->
        status = ROLLED_BACK; hold_moves++; OUTBOX(S_COMPENSATED); CHECK_HOLD; SETTLED_BY(me);
        RELEASE_AFTER_COMMIT(me);
        printf("@@%d|DB: releases the hold, payment rolled back|", me); SHOW
    :: (status == PENDING || status == NEEDS_ATTENTION) && fence && !FENCE_OK(me) ->
        RELEASE_AFTER_COMMIT(me); SUPERSEDED;
        printf("@@%d|DB: release refused: a newer claim is on the row (alert)|", me); SHOW
    :: else -> RELEASE_AFTER_COMMIT(me); printf("@@%d|DB: release REJECTED|", me); SHOW
    fi
}

/* an initiator actor's claim: no live lease of another owner; it fences processors */
inline init_claim(me) {
    owner = me; fenced = true; LIVE
}

inline crashed(me) {
    if
    :: owner == me -> DIED
    :: else -> skip
    fi
}

/* ================================================================ processor delivery */
/* SagaDelivery (docs/protocol.md §6): two deliveries of payment.initiated — a duplicate, a
 * redelivery after a crash, a redrive. "Keeps the lease, Pub/Sub redelivers" is a new claim.
 * A delivery's only point visible to others is "before a claim": a call it sends after its
 * claim may as well have been sent with it and applied later (README "Granularity"). The
 * chains are macros so that one transition can run through several of them. */

/* the outcome is logged with its publication: a crash between the two is the event lost */
#define P_PUBLISH(me) \
    if \
    :: published -> skip \
    :: else -> MUST_OWN(me, p_lost); published = true \
    fi; \
    release_claim(me); \
    printf("@@%d|publishes the outcome, marks it published, acks|", me); SHOW; goto p_done

#define P_CHARGED(me) \
    if \
    :: true -> WRITE(me, S_CHARGED | S_COMPLETED, p_lost); \
        printf("@@%d|logs CHARGED + COMPLETED|", me); SHOW; P_PUBLISH(me) \
    :: true -> WRITE(me, S_CHARGED, p_lost);    /* fault injection: a failure after the charge */ \
        printf("@@%d|logs CHARGED, then fails after the charge|", me); SHOW; goto p_claim \
    fi

#define P_CANCEL(me) \
    if \
    :: apply_cancel(); \
        if \
        :: intent[li] == I_CANCELED -> printf("@@%d|cancels the intent: canceled|", me); SHOW; \
            WRITE(me, S_CHARGE_CANCELED | S_FAILED, p_lost); \
            printf("@@%d|logs CHARGE_CANCELED + FAILED|", me); SHOW; P_PUBLISH(me) \
        :: intent[li] == I_SUCCEEDED -> printf("@@%d|cancels the intent: refused, it succeeded|", me); SHOW; \
            P_CHARGED(me) \
        fi \
    :: FAULTS -> flx = true; \
        printf("@@%d|cancels the intent: no answer (in flight); keeps the lease|", me); SHOW; goto p_claim \
    fi

#define P_CONFIRM(me) \
    if \
    :: apply_confirm(li); \
        if \
        :: intent[li] == I_SUCCEEDED -> printf("@@%d|confirms intent #%d: succeeded|", me, li); SHOW; \
            P_CHARGED(me) \
        :: intent[li] == I_REQ_PM -> printf("@@%d|confirms intent #%d: declined|", me, li); SHOW; \
            WRITE(me, S_CHARGE_DECLINED, p_lost); \
            printf("@@%d|logs CHARGE_DECLINED (write-ahead for the cancel)|", me); SHOW; P_CANCEL(me) \
        :: intent[li] == I_CANCELED -> printf("@@%d|confirms intent #%d: it is canceled|", me, li); SHOW; \
            goto p_claim \
        fi \
    :: FAULTS -> flc[li] = true; \
        printf("@@%d|confirms intent #%d: no answer (in flight); keeps the lease|", me, li); SHOW; goto p_claim \
    :: true -> /* past SAGA_TIMEOUT_SECONDS (or fault injection before the charge): cancel instead */ \
        WRITE(me, S_CANCEL_REQUESTED, p_lost); \
        printf("@@%d|saga timeout: logs CANCEL_REQUESTED|", me); SHOW; P_CANCEL(me) \
    fi

#define P_REFUND(me) \
    if \
    :: apply_refund(); printf("@@%d|refunds the intent: accepted|", me); SHOW; \
        WRITE(me, S_REFUNDED, p_lost); refund_final = (refund == R_SUCCEEDED); \
        printf("@@%d|logs REFUNDED (its outcome)|", me); SHOW; P_PUBLISH(me) \
    :: FAULTS -> flr = true; \
        printf("@@%d|refunds the intent: no answer (in flight); keeps the lease|", me); SHOW; goto p_claim \
    fi

proctype processor(byte me) {
    byte mine;      /* the intent this delivery created, until it is logged */
p_claim:
    CRASH(p_dead);
    atomic {
        if
        :: fenced || published ->
            printf("@@%d|claim refused: settled elsewhere, acks|", me); SHOW; goto p_done
        :: !fenced && !published && (owner == NOBODY || owner == me || LAPSE_OK) ->
            owner = me; LIVE; steps = steps | S_RECEIVED;
            printf("@@%d|claims the payment (lease)|", me); SHOW
        fi;
        /* walk the log forward from the first thing it leaves open */
        if
        :: has(OUTCOME) -> P_PUBLISH(me)
        :: !has(OUTCOME) && has(S_INTENT_CREATED) && has(S_REFUND_REQUESTED) -> P_REFUND(me)
        :: !has(OUTCOME) && has(S_INTENT_CREATED) && !has(S_REFUND_REQUESTED) && has(S_CHARGED) ->
#ifdef NO_REFUND_WRITE_AHEAD
            printf("@@%d|refunds without logging REFUND_REQUESTED first|", me); SHOW;
#else
            WRITE(me, S_REFUND_REQUESTED, p_lost);
            printf("@@%d|logs REFUND_REQUESTED (write-ahead for the refund)|", me); SHOW;
#endif
            P_REFUND(me)
        :: (!has(OUTCOME) && has(S_INTENT_CREATED) && !has(S_REFUND_REQUESTED | S_CHARGED)
            && has(S_CHARGE_DECLINED | S_CANCEL_REQUESTED)) -> P_CANCEL(me)
        :: (!has(OUTCOME) && has(S_INTENT_CREATED)
            && !has(S_REFUND_REQUESTED | S_CHARGED | S_CHARGE_DECLINED | S_CANCEL_REQUESTED)) -> P_CONFIRM(me)
        :: !has(OUTCOME) && !has(S_INTENT_CREATED) ->
            create_intent(mine);
#ifdef CONFIRM_BEFORE_LOGGED
            /* the variant: create and confirm in one go, log the id afterwards */
            if
            :: apply_confirm(mine)
            :: FAULTS -> flc[mine] = true
            fi;
            printf("@@%d|creates and confirms intent #%d before logging it|", me, mine); SHOW;
#else
            printf("@@%d|creates intent #%d (no money moves)|", me, mine); SHOW;
#endif
            if
            :: FAULTS -> mine = 0; printf("@@%d|  the answer is lost: retries|", me); SHOW; goto p_claim
            :: true -> skip
            fi;
            WRITE(me, S_INTENT_CREATED, p_lost);
            li = mine; mine = 0;
            printf("@@%d|logs INTENT_CREATED (write-ahead for the confirm)|", me); SHOW;
            P_CONFIRM(me)
        fi
    }
p_lost:
    atomic { mine = 0; printf("@@%d|write refused: the claim was lost, stops|", me); SHOW }
    goto p_done;
p_dead:
    atomic { mine = 0; crashed(me); printf("@@%d|CRASHES|", me); SHOW }
p_done:
    skip
}

/* ================================================================ reconciler */
/* reconcile_payment: a pending payment past PAYMENT_TIMEOUT_SECONDS, or
 * needs_attention(gateway_unreachable) when due. Time is abstracted: a pass may start
 * whenever the payment is open. */
active proctype reconciler() {
end_idle:
    do
    :: atomic { status == COMPLETED || status == ROLLED_BACK -> break }
    :: atomic {
        (status == PENDING || status == NEEDS_ATTENTION) && CLAIM_FREE ->
        init_claim(REC); TAKE_SEQ(rec_seq);
        printf("@@3|claims the payment (fences processors)|"); SHOW
       }
        CRASH(r_dead);
        atomic {    /* re-reads the payment, registering the claim on its row; reads the log */
        if
        :: !(status == PENDING || status == NEEDS_ATTENTION) ->
            printf("@@3|re-reads the payment: settled already|"); SHOW; goto r_refused
        :: else -> REGISTER(REC, r_refused)
        fi;
#ifdef NO_DB_FENCE
        printf("@@3|re-reads the payment (pending / needs_attention)|"); SHOW;
#else
        printf("@@3|re-reads the payment (pending / needs_attention), registers its claim|"); SHOW;
#endif
        if
        :: has(S_COMPLETED) ->
            printf("@@3|follows the log: COMPLETED|"); SHOW; goto r_capture
        :: !has(S_COMPLETED) && has(S_FAILED | S_REFUNDED) ->
            printf("@@3|follows the log: FAILED / REFUNDED|"); SHOW; goto r_release
        :: !has(OUTCOME) && has(S_REFUND_REQUESTED) ->
            printf("@@3|follows the log: an open REFUND_REQUESTED|"); SHOW; goto r_refund
        :: !has(OUTCOME | S_REFUND_REQUESTED) && !has(S_INTENT_CREATED) ->
            printf("@@3|follows the log: no intent named|"); SHOW; goto r_release
        :: !has(OUTCOME | S_REFUND_REQUESTED) && has(S_INTENT_CREATED) ->
            printf("@@3|follows the log: closes the named intent|"); SHOW
        fi
       }
        CRASH(r_dead);
        atomic {
#ifdef LIST_AS_PROOF
            /* the bug: a lookup that shows no succeeded charge is taken as proof */
            if
            :: intent[li] == I_SUCCEEDED ->
                printf("@@3|looks the payment up: a succeeded charge|"); SHOW
            :: intent[li] != I_SUCCEEDED ->
                printf("@@3|looks the payment up: no charge; takes that as proof|"); SHOW; goto r_release
            :: FAULTS -> printf("@@3|the lookup fails|"); SHOW; goto r_ambiguous
            fi;
#else
            if
            :: !has(S_CANCEL_REQUESTED | S_CHARGE_DECLINED) -> WRITE(REC, S_CANCEL_REQUESTED, r_lost);
                printf("@@3|logs CANCEL_REQUESTED|"); SHOW
            :: else -> skip
            fi;
            if
            :: apply_cancel();
                if
                :: intent[li] == I_CANCELED -> printf("@@3|cancels the intent: canceled|"); SHOW;
                    WRITE(REC, S_CHARGE_CANCELED, r_lost);
                    printf("@@3|logs CHARGE_CANCELED|"); SHOW; goto r_release
                :: intent[li] == I_SUCCEEDED -> printf("@@3|cancels the intent: refused, it succeeded|"); SHOW
                fi
            :: FAULTS -> flx = true; printf("@@3|cancels the intent: no answer (in flight)|"); SHOW; goto r_ambiguous
            fi;
#endif
            if
            :: refund == R_NONE -> WRITE(REC, S_CHARGED, r_lost);
                printf("@@3|logs CHARGED|"); SHOW; goto r_capture
            :: refund != R_NONE -> WRITE(REC, S_CHARGED | S_REFUNDED, r_lost);
                printf("@@3|logs CHARGED + REFUNDED (refunded already)|"); SHOW; goto r_release
            fi
        }
r_refund:
        CRASH(r_dead);
        atomic {
            if
            :: apply_refund(); printf("@@3|refunds the intent: accepted|"); SHOW;
                WRITE(REC, S_REFUNDED, r_lost); refund_final = (refund == R_SUCCEEDED);
                printf("@@3|logs REFUNDED|"); SHOW; goto r_release
            :: FAULTS -> flr = true; printf("@@3|refunds the intent: no answer (in flight)|"); SHOW; goto r_ambiguous
            fi
        }
r_release:
        CRASH(r_dead);
        atomic { db_release(REC, true); FORGET_SEQ(rec_seq) }
        LATE_STEP(REC, r_dead);
        goto end_idle;
r_capture:
        CRASH(r_dead);
        atomic { db_capture(REC, true); FORGET_SEQ(rec_seq) }
        LATE_STEP(REC, r_dead);
        goto end_idle;
r_ambiguous:
        CRASH(r_dead);
        atomic {
            if
            :: status == PENDING && FENCE_OK(REC) ->    /* past twice the timeout */
                status = NEEDS_ATTENTION; OUTBOX(S_NEEDS_ATTENTION); RELEASE_AFTER_COMMIT(REC);
                printf("@@3|DB: needs_attention (gateway_unreachable); retried with backoff|"); SHOW
            :: true -> release_claim(REC); FORGET_SEQ(rec_seq);
                printf("@@3|not definitive: releases the claim, retries later|"); SHOW; goto end_idle
            fi;
            FORGET_SEQ(rec_seq)
        }
        LATE_STEP(REC, r_dead);
        goto end_idle;
r_lost:
        atomic { FORGET_SEQ(rec_seq); printf("@@3|write refused: the claim was lost, ends the pass|"); SHOW }
        goto end_idle;
r_refused:
        atomic { release_claim(REC); FORGET_SEQ(rec_seq) }
        goto end_idle;
r_dead:
        atomic { crashed(REC); FORGET_SEQ(rec_seq); printf("@@3|CRASHES mid-pass|"); SHOW }
    od
}

/* ================================================================ sweeper */
#ifdef REFUND_WITHIN_WINDOW_ONLY
#define SWEEP_DUE window_open
#else
#define SWEEP_DUE (window_open || refund_open)
#endif

/* sweep_payment: rolled-back payments during the late-charge window. A logged refund is
 * followed until it is final, window or not (README "Refunds outlive the window"). A pass is
 * one transition: no other actor acts on a rolled-back payment (README "Granularity"). */
active proctype sweeper() {
end_idle:
    do
    :: atomic { status == COMPLETED || (status == ROLLED_BACK && !SWEEP_DUE) -> break }
    :: atomic {
        status == ROLLED_BACK && SWEEP_DUE && CLAIM_FREE ->
        init_claim(SWP);
        if
        :: has(S_REFUND_REQUESTED) && !has(S_REFUNDED) ->
            printf("@@4|claims; follows the log: an open REFUND_REQUESTED|"); SHOW
        :: has(S_REFUNDED) && !refund_final && !has(S_REFUND_FAILED) ->
            if     /* retrieves the logged refund */
            :: refund == R_SUCCEEDED -> refund_final = true;
                printf("@@4|claims; retrieves the refund: succeeded|"); SHOW
            :: refund == R_FAILED -> steps = steps | S_REFUND_FAILED;
                printf("@@4|claims; retrieves the refund: FAILED, logs REFUND_FAILED (surfaced)|"); SHOW
            :: refund == R_PENDING -> printf("@@4|claims; the refund is still pending|"); SHOW
            :: FAULTS -> skip
            fi;
            goto s_done
        :: else ->
            if     /* retrieves the logged intent */
            :: has(S_INTENT_CREATED) && window_open && intent[li] == I_SUCCEEDED && refund == R_NONE ->
                printf("@@4|claims; retrieves the intent: a charge stands on a rolled-back payment|"); SHOW;
                steps = steps | S_REFUND_REQUESTED;
                printf("@@4|logs REFUND_REQUESTED|"); SHOW
            :: has(S_INTENT_CREATED) && window_open && (intent[li] == I_REQ_CONF || intent[li] == I_REQ_PM) ->
                printf("@@4|claims; retrieves the intent: unconfirmed|"); SHOW;
                steps = steps | S_CANCEL_REQUESTED;
                printf("@@4|logs CANCEL_REQUESTED|"); SHOW;
                if
                :: apply_cancel(); printf("@@4|cancels the intent: answered|"); SHOW;
                    if
                    :: intent[li] == I_CANCELED -> steps = steps | S_CHARGE_CANCELED;
                        printf("@@4|logs CHARGE_CANCELED|"); SHOW
                    :: else -> skip
                    fi
                :: FAULTS -> flx = true; printf("@@4|cancels the intent: no answer (in flight)|"); SHOW
                fi;
                goto s_done
            :: else -> goto s_done
            fi
        fi;
        if
        :: apply_refund(); printf("@@4|refunds the intent: accepted|"); SHOW;
            steps = steps | S_REFUNDED; refund_final = (refund == R_SUCCEEDED);
            printf("@@4|logs REFUNDED|"); SHOW
        :: FAULTS -> flr = true; printf("@@4|refunds the intent: no answer (in flight)|"); SHOW
        fi;
s_done:
        release_claim(SWP)
       }
    od
}

/* ================================================================ operator */
/* settle_payment (CLI, admin, console) on a needs_attention payment: --capture, --release,
 * --refund-and-release, invoked any number of times. A claim held by another actor refuses the
 * action ("try again"). */
#ifdef F1_NO_CLAIM
#define OP_WRITE(s) steps = steps | (s)
#define OP_FENCED false
#else
#define OP_WRITE(s) WRITE(OPR, s, o_lost)
#define OP_FENCED true
#endif

active proctype operator() {
end_idle:
    do
    :: atomic { status == COMPLETED || status == ROLLED_BACK -> break }
    :: atomic {
#ifdef F1_NO_CLAIM
        status == NEEDS_ATTENTION ->
        printf("@@5|checks the status once: needs_attention (takes no claim)|"); SHOW;
#else
        status == NEEDS_ATTENTION && CLAIM_FREE ->
        init_claim(OPR); TAKE_SEQ(opr_seq);
        printf("@@5|claims the payment|"); SHOW
       }
        CRASH(o_dead);
        atomic {    /* re-checks needs_attention registering the claim; records who and why */
        if
        :: status != NEEDS_ATTENTION -> printf("@@5|re-checks: settled already; refused|"); SHOW; goto o_done
        :: else -> REGISTER(OPR, o_done)
        fi;
#ifdef NO_DB_FENCE
        printf("@@5|re-checks needs_attention, records the OperatorAction|"); SHOW;
#else
        printf("@@5|re-checks needs_attention, registers its claim, records the OperatorAction|"); SHOW;
#endif
#endif
        if
        :: !has(S_REFUND_REQUESTED) && has(S_INTENT_CREATED) && intent[li] == I_SUCCEEDED && refund == R_NONE ->
            printf("@@5|--capture: retrieves the intent: succeeded|"); SHOW;
            OP_WRITE(S_CHARGED); printf("@@5|logs CHARGED|"); SHOW; goto o_capture
        :: !has(S_REFUND_REQUESTED) && has(S_INTENT_CREATED) ->
            printf("@@5|--release or --refund-and-release: closes the intent|"); SHOW; goto o_close
        :: has(S_REFUND_REQUESTED) && !has(S_REFUNDED) ->
            printf("@@5|--refund-and-release: finishes the open refund|"); SHOW; goto o_refund
        :: has(S_REFUNDED) || !has(S_INTENT_CREATED) ->
            printf("@@5|--release: nothing stands|"); SHOW; goto o_release
        fi
       }
o_close:
        CRASH(o_dead);
        atomic {
            if
            :: !has(S_CANCEL_REQUESTED | S_CHARGE_DECLINED) -> OP_WRITE(S_CANCEL_REQUESTED);
                printf("@@5|logs CANCEL_REQUESTED|"); SHOW
            :: else -> skip
            fi;
            if
            :: apply_cancel();
                if
                :: intent[li] == I_CANCELED -> printf("@@5|cancels the intent: canceled|"); SHOW;
                    OP_WRITE(S_CHARGE_CANCELED); printf("@@5|logs CHARGE_CANCELED|"); SHOW; goto o_release
                :: intent[li] == I_SUCCEEDED -> printf("@@5|cancels the intent: refused, it succeeded|"); SHOW;
                    OP_WRITE(S_CHARGED); printf("@@5|logs CHARGED|"); SHOW
                fi
            :: FAULTS -> flx = true;
                printf("@@5|cancels the intent: no answer; refused, try again|"); SHOW; goto o_done
            fi;
            if
            :: printf("@@5|--release refused: a charge stands|"); SHOW; goto o_done
            :: true -> OP_WRITE(S_REFUND_REQUESTED);    /* --refund-and-release */
                printf("@@5|--refund-and-release: logs REFUND_REQUESTED|"); SHOW
            fi
        }
o_refund:
        CRASH(o_dead);
        atomic {
            if
            :: apply_refund(); printf("@@5|refunds the intent: accepted|"); SHOW;
                OP_WRITE(S_REFUNDED); refund_final = (refund == R_SUCCEEDED);
                printf("@@5|logs REFUNDED|"); SHOW
            :: FAULTS -> flr = true;
                printf("@@5|refunds the intent: no answer; refused, try again|"); SHOW; goto o_done
            fi
        }
o_release:
        CRASH(o_dead);
        atomic { db_release(OPR, OP_FENCED); FORGET_SEQ(opr_seq) }
        LATE_STEP(OPR, o_dead);
        goto end_idle;
o_capture:
        CRASH(o_dead);
        atomic { db_capture(OPR, OP_FENCED); FORGET_SEQ(opr_seq) }
        LATE_STEP(OPR, o_dead);
        goto end_idle;
o_done:
        atomic { release_claim(OPR); FORGET_SEQ(opr_seq) }
        goto end_idle;
o_lost:
        atomic { FORGET_SEQ(opr_seq); printf("@@5|write refused: the claim was lost, stops|"); SHOW }
        goto end_idle;
o_dead:
        atomic { crashed(OPR); FORGET_SEQ(opr_seq); printf("@@5|CRASHES mid-action|"); SHOW }
    od
}

/* ================================================================ outcome consumer */
/* handle_outcome_message: applies the outcome the log holds, under the payment row's lock. */
active proctype consumer() {
end_wait:
    atomic {
        published;
        if
        :: FAULTS -> printf("@@6|the outcome event is dead-lettered|"); SHOW; goto c_done
        :: has(S_COMPLETED) -> db_capture(CON, false);
            if
            :: status == ROLLED_BACK -> goto c_late     /* payment.completed after a rollback */
            :: else -> skip
            fi
        :: !has(S_COMPLETED) -> db_release(CON, false)
        fi
    }
    LATE_STEP(CON, c_done);
    goto c_done;
c_late:
    atomic {    /* unreachable under the protocol (spin reports it unreached): kept as it is coded */
        CLAIM_FREE -> init_claim(CON);
#ifdef PROBES
        late_refund = true;
#endif
        steps = steps | S_REFUND_REQUESTED;
        printf("@@6|late payment.completed: claims, logs REFUND_REQUESTED|"); SHOW;
        if
        :: apply_refund(); printf("@@6|refunds the intent: accepted|"); SHOW;
            WRITE(CON, S_REFUNDED, c_done); refund_final = (refund == R_SUCCEEDED);
            printf("@@6|logs REFUNDED|"); SHOW
        :: FAULTS -> flr = true; printf("@@6|refunds the intent: no answer (in flight)|"); SHOW
        fi;
        release_claim(CON)
    }
c_done:
    skip
}

/* ================================================================ provider and time */
active proctype provider() {
end_idle:
    do
    :: atomic { flc[0] -> apply_confirm(0); printf("@@0|applies the confirm in flight of intent #0|"); SHOW }
    :: atomic { flc[1] -> apply_confirm(1); printf("@@0|applies the confirm in flight of intent #1|"); SHOW }
    :: atomic { flx -> apply_cancel(); printf("@@0|applies the cancel in flight|"); SHOW }
    :: atomic { flr -> apply_refund(); printf("@@0|applies the refund in flight|"); SHOW }
    :: atomic { flc[0] || flc[1] || flx || flr ->
        flc[0] = false; flc[1] = false; flx = false; flr = false;
        printf("@@0|the requests in flight are lost: never applied|"); SHOW }
    :: atomic { refund == R_PENDING -> refund = R_SUCCEEDED; printf("@@0|the pending refund succeeds|"); SHOW }
    :: atomic { refund == R_PENDING -> refund = R_FAILED; printf("@@0|the pending refund FAILS|"); SHOW }
#ifndef NO_STEP_OUTBOX
    :: atomic { outbox != 0 -> steps = steps | outbox; outbox = 0;
        printf("@@0|the step relay delivers the outbox to Firestore|"); SHOW }
#endif
    :: atomic { window_open && status == ROLLED_BACK ->
        window_open = false; printf("@@0|the late-charge window closes|"); SHOW }
    /* the key matters only until the intent's id is logged */
    :: atomic { key_live && created < NI && !has(S_INTENT_CREATED) ->
        key_live = false; printf("@@0|24 h pass: Stripe prunes the create key|"); SHOW }
#ifdef LIVENESS
    :: atomic { !healthy -> healthy = true; printf("@@0|from now on the provider answers|"); SHOW }
#endif
    od
}

init {
    atomic {
        run processor(P1);
        run processor(P2)
    }
}

/* ================================================================ properties */
/* money standing on intent i: it succeeded and was not refunded */
#define stands(i) (intent[i] == I_SUCCEEDED && !(has(S_INTENT_CREATED) && li == i && refund == R_SUCCEEDED))
#define standing (stands(0) + stands(1))

#if PROP > 0
active proctype quiescence() {
    timeout ->
    printf("@@0|QUIESCENCE: nothing more happens|"); SHOW;
#if PROP == 1
    /* 1: no rolled-back payment has money standing (a failed refund is surfaced) */
    assert(status != ROLLED_BACK || standing == 0
           || (refund == R_FAILED && has(S_REFUND_FAILED) && standing == 1 && stands(li)));
#elif PROP == 2
    /* 2: at most one charge stands for the payment */
    assert(standing <= 1);
#elif PROP == 3
    /* 3: captured or released once (asserted at every commit); a completed payment's charge
     * stands, unrefunded, and it is the logged intent's */
    assert(status != COMPLETED || (has(S_INTENT_CREATED) && intent[li] == I_SUCCEEDED && refund == R_NONE));
#elif PROP == 5
    /* 5: the saga log agrees with the database: every settlement step delivered */
    assert(outbox == 0
           && (status != COMPLETED || (has(S_CAPTURED) && !has(S_COMPENSATED)))
           && (status != ROLLED_BACK || (has(S_COMPENSATED) && !has(S_CAPTURED)))
           && (status != NEEDS_ATTENTION || has(S_NEEDS_ATTENTION)));
#endif
}
#endif

#ifdef PROBES
/* Probes: paths the main model must reach (and one it must not). The monitor prints a probe's
 * number the first time the search meets it; the record is C state outside the state vector,
 * so the search itself is the main model's. check.py compares the list with the expectation. */
c_decl { unsigned int probes_seen; }
#define PROBE(n, reached) \
    :: atomic { (reached) && c_expr { !(probes_seen & (1u << n)) } -> \
        c_code { probes_seen |= (1u << n); printf("PROBE %d reached\n", n); } }
active proctype probes() {
end_watch:
    do
    PROBE(1, status == COMPLETED && settler == CON)
    PROBE(2, status == ROLLED_BACK && has(S_CHARGE_DECLINED) && settler == CON)
    PROBE(3, status == ROLLED_BACK && has(S_CHARGE_CANCELED) && settler == REC)
    PROBE(4, status == COMPLETED && settler == REC && !has(S_COMPLETED))
    PROBE(5, status == ROLLED_BACK && refund == R_SUCCEEDED && refund_final)
    PROBE(6, status == ROLLED_BACK && has(S_REFUND_FAILED))
    PROBE(7, status == COMPLETED && settler == OPR)
    PROBE(8, status == ROLLED_BACK && settler == OPR && refund != R_NONE)
    PROBE(9, intent[1] != I_NONE && intent[0] != I_NONE && status != PENDING)
    PROBE(10, status == ROLLED_BACK && settler == REC && has(S_REFUND_REQUESTED) && !has(S_FAILED))
    PROBE(11, late_refund)
    PROBE(12, superseded)
    od
}
#endif

#ifdef LIVENESS
/* 4: every payment terminates once the provider answers (checked under weak fairness) */
ltl terminates { <> healthy -> <> terminal }
#endif
