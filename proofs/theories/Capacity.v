(** capacity: what one token of context can select (docs/theory.md §2).

    - Any model, one hard token: at most [V] distinct behaviours (a model is a function of
      its input, and there are [V] tokens); a hard prompt of [n] tokens: at most [V^n].
    - The construction of Theorem 1 with [e^T > (2V - 3) N]: greedy decoding after one
      virtual token emits any of the [V^N] sequences of length [N], so one virtual token
      reaches [V^N > V] completions.
    - Theorem 2 with [e^T > (4V - 3)]: one virtual token selects any of the [V^V] maps
      [[V] -> [V]]; a hard prompt reaching them all needs [n >= V] tokens. *)

Require Import Reals Lra Lia List.
Require Import PrefixTheory.Sums PrefixTheory.Linear PrefixTheory.Softmax.
Require Import PrefixTheory.Constructions.
Import ListNotations.
Open Scope R_scope.

(** * Counting behaviours of hard tokens (any model, any behaviour type) *)

Theorem hard_token_at_most_V {B : Type} (V : nat) (f : nat -> B) (l : list B) :
  NoDup l -> (forall b, In b l -> exists t, (t < V)%nat /\ f t = b) -> (length l <= V)%nat.
Proof.
  intros Hnd Hl. rewrite <- (seq_length V 0), <- (map_length f).
  apply NoDup_incl_length; [exact Hnd |].
  intros b Hb. destruct (Hl b Hb) as [t [Ht <-]]. apply in_map, in_seq. lia.
Qed.

(** All token sequences of length [n] over [V] tokens. *)
Fixpoint seqs (V n : nat) : list (list nat) :=
  match n with
  | O => [[]]
  | S m => flat_map (fun t => map (cons t) (seqs V m)) (seq 0 V)
  end.

Lemma in_seqs (V n : nat) (ys : list nat) :
  In ys (seqs V n) <-> length ys = n /\ Forall (fun t => (t < V)%nat) ys.
Proof.
  revert ys. induction n as [| n IH]; intro ys; simpl.
  - split.
    + intros [<- | []]. split; [reflexivity | constructor].
    + intros [Hl _]. destruct ys; [left; reflexivity | discriminate].
  - rewrite in_flat_map. split.
    + intros [t [Ht Hys]]. apply in_map_iff in Hys. destruct Hys as [zs [<- Hzs]].
      apply IH in Hzs. apply in_seq in Ht. simpl. split; [f_equal; apply Hzs |].
      constructor; [lia | apply Hzs].
    + intros [Hl HF]. destruct ys as [| t zs]; [discriminate |].
      inversion HF; subst. exists t. split; [apply in_seq; lia |].
      apply in_map. apply IH. split; [simpl in Hl; lia | assumption].
Qed.

Lemma flat_map_const_length {A B : Type} (f : A -> list B) (l : list A) (c : nat) :
  (forall a, length (f a) = c) -> length (flat_map f l) = (length l * c)%nat.
Proof.
  intro H. induction l as [| a l IH]; [reflexivity |].
  simpl. rewrite app_length, H, IH. reflexivity.
Qed.

Lemma seqs_length (V n : nat) : length (seqs V n) = (V ^ n)%nat.
Proof.
  induction n as [| n IH]; [reflexivity |].
  simpl. rewrite (flat_map_const_length _ _ (V ^ n)).
  - rewrite seq_length. reflexivity.
  - intro t. rewrite map_length. exact IH.
Qed.

Lemma NoDup_app_disjoint {A : Type} (l1 l2 : list A) :
  NoDup l1 -> NoDup l2 -> (forall a, In a l1 -> ~ In a l2) -> NoDup (l1 ++ l2).
Proof.
  induction l1 as [| a l1 IH]; intros H1 H2 Hd; [exact H2 |].
  inversion H1; subst. simpl. constructor.
  - rewrite in_app_iff. intros [Hin | Hin]; [contradiction | apply (Hd a); [left |]; auto].
  - apply IH; auto. intros b Hb. apply Hd. right. exact Hb.
Qed.

Lemma NoDup_map_cons (t : nat) (S : list (list nat)) : NoDup S -> NoDup (map (cons t) S).
Proof.
  induction S as [| s S IH]; intro H; simpl; [constructor |].
  inversion H; subst. constructor; [| apply IH; assumption].
  intro Hin. apply in_map_iff in Hin. destruct Hin as [s' [Heq Hs']].
  injection Heq as ->. contradiction.
Qed.

Lemma seqs_NoDup (V n : nat) : NoDup (seqs V n).
Proof.
  induction n as [| n IH]; simpl; [repeat constructor; auto |].
  assert (Hgen : forall l, NoDup l -> NoDup (flat_map (fun t => map (cons t) (seqs V n)) l)).
  { induction l as [| t l IHl]; intro Hl; simpl; [constructor |].
    inversion Hl; subst. apply NoDup_app_disjoint.
    - apply NoDup_map_cons, IH.
    - apply IHl. assumption.
    - intros ys Hys Hin. apply in_map_iff in Hys. destruct Hys as [zs [<- _]].
      apply in_flat_map in Hin. destruct Hin as [t' [Ht' Hin]].
      apply in_map_iff in Hin. destruct Hin as [zs' [Heq _]]. injection Heq as -> _.
      contradiction. }
  apply Hgen, seq_NoDup.
Qed.

(** A hard prompt of [n] tokens: at most [V^n] behaviours (any model). *)
Theorem hard_prompt_at_most_V_pow {B : Type} (V n : nat) (f : list nat -> B) (l : list B) :
  NoDup l ->
  (forall b, In b l -> exists toks, In toks (seqs V n) /\ f toks = b) ->
  (length l <= V ^ n)%nat.
Proof.
  intros Hnd Hl. rewrite <- seqs_length, <- (map_length f).
  apply NoDup_incl_length; [exact Hnd |].
  intros b Hb. destruct (Hl b Hb) as [toks [Ht <-]]. apply in_map, Ht.
Qed.

(** Fewer than [V] hard tokens select fewer than the [V^V] maps [[V] -> [V]]. *)
Theorem hard_prompt_needs_V_tokens (V n : nat) : (2 <= V)%nat -> (n < V)%nat -> (V ^ n < V ^ V)%nat.
Proof. intros HV Hn. apply Nat.pow_lt_mono_r; lia. Qed.

(** * Greedy decoding of the Theorem-1 construction *)

Fixpoint argmax (n : nat) (f : nat -> R) : nat :=
  match n with
  | O => O
  | S m => let b := argmax m f in if Rlt_dec (f b) (f m) then m else b
  end.

Lemma argmax_spec (n : nat) (f : nat -> R) :
  (0 < n)%nat -> (argmax n f < n)%nat /\ forall k, (k < n)%nat -> f k <= f (argmax n f).
Proof.
  induction n as [| n IH]; intro Hn; [lia |].
  destruct n as [| n].
  - cbn [argmax]. match goal with |- context [Rlt_dec ?a ?b] => destruct (Rlt_dec a b) end;
      (split; [lia | intros k Hk; replace k with 0%nat by lia; lra]).
  - destruct (IH ltac:(lia)) as [Hlt Hmax].
    change (argmax (S (S n)) f) with
      (if Rlt_dec (f (argmax (S n) f)) (f (S n)) then S n else argmax (S n) f).
    set (b := argmax (S n) f) in *.
    destruct (Rlt_dec (f b) (f (S n))) as [Hl | Hl]; split; try lia.
    + intros k Hk. destruct (Nat.eq_dec k (S n)) as [-> | Hne]; [lra |].
      pose proof (Hmax k ltac:(lia)). lra.
    + intros k Hk. destruct (Nat.eq_dec k (S n)) as [-> | Hne]; [lra |]. apply Hmax. lia.
Qed.

Lemma argmax_decodes (V : nat) (z : R) (y : nat) :
  (y < V)%nat -> decodes_to V z y -> argmax V (dec_logit V z) = y.
Proof.
  intros Hy Hdec. destruct (argmax_spec V (dec_logit V z) ltac:(lia)) as [Hlt Hmax].
  destruct (Nat.eq_dec (argmax V (dec_logit V z)) y) as [Heq | Hne]; [exact Heq |].
  pose proof (Hdec _ Hlt Hne). pose proof (Hmax y Hy). lra.
Qed.

(** The content of the decoding query at step [p]: BOS (token value 0) at key 1, then the
    outputs so far. *)
Definition content_token (outs : list nat) (j : nat) : nat :=
  match j with
  | O => O
  | S O => O
  | S (S j') => nth j' outs O
  end.

Fixpoint generate (V N : nat) (T : R) (y : nat -> nat) (p : nat) : list nat :=
  match p with
  | O => []
  | S q =>
      let outs := generate V N T y q in
      outs ++ [argmax V (dec_logit V (uncond_out V N (S q) T y (content_token outs)))]
  end.

Theorem unconditional_generates (V N : nat) (T : R) (y : nat -> nat) :
  (2 <= V)%nat -> exp T > (2 * INR V - 3) * INR N ->
  (forall i, (i < N)%nat -> (y i < V)%nat) ->
  forall p, (p <= N)%nat -> generate V N T y p = map y (seq 0 p).
Proof.
  intros HV HT Hy p. induction p as [| q IH]; intro Hp; [reflexivity |].
  simpl generate. rewrite IH by lia.
  rewrite (argmax_decodes V _ (y q)).
  - rewrite seq_S, map_app. reflexivity.
  - apply Hy. lia.
  - assert (Ht : forall j, (content_token (map y (seq 0 q)) j < V)%nat).
    2: { pose proof (unconditional_step V N (S q) T y (content_token (map y (seq 0 q)))
                       HV ltac:(lia) Hp HT Hy Ht) as Hs.
         replace (S q - 1)%nat with q in Hs by lia. exact Hs. }
    intros j. unfold content_token. destruct j as [| [| j']]; try lia.
    destruct (Nat.lt_ge_cases j' q) as [Hj | Hj].
    + rewrite (nth_indep _ 0%nat (y 0%nat)) by (rewrite map_length, seq_length; lia).
      rewrite map_nth, seq_nth by exact Hj. apply Hy. lia.
    + rewrite nth_overflow by (rewrite map_length, seq_length; lia). lia.
Qed.

(** The completion greedy decoding produces after the virtual token that encodes [ys]. *)
Definition completion (V N : nat) (T : R) (ys : list nat) : list nat :=
  generate V N T (fun i => nth i ys 0%nat) N.

Lemma map_nth_seq_self (ys : list nat) :
  map (fun i => nth i ys 0%nat) (seq 0 (length ys)) = ys.
Proof.
  induction ys as [| a ys IH]; [reflexivity |].
  simpl. f_equal. rewrite <- seq_shift, map_map. exact IH.
Qed.

Theorem virtual_token_any_sequence (V N : nat) (T : R) (ys : list nat) :
  (2 <= V)%nat -> exp T > (2 * INR V - 3) * INR N ->
  In ys (seqs V N) -> completion V N T ys = ys.
Proof.
  intros HV HT Hin. apply in_seqs in Hin. destruct Hin as [Hl HF].
  unfold completion. rewrite (unconditional_generates V N T); [| assumption | assumption | | lia].
  - rewrite <- Hl. apply map_nth_seq_self.
  - intros i Hi. rewrite Forall_forall in HF. apply HF, nth_In. lia.
Qed.

(** Witness against "one virtual token selects no more than one hard token": on the
    Theorem-1 construction the [V^N] virtual tokens give [V^N] pairwise distinct completions,
    more than the [V] behaviours any hard token of any model can give. *)
Theorem capacity (V N : nat) (T : R) :
  (2 <= V)%nat -> (2 <= N)%nat -> exp T > (2 * INR V - 3) * INR N ->
  NoDup (map (completion V N T) (seqs V N)) /\
  length (map (completion V N T) (seqs V N)) = (V ^ N)%nat /\
  (V < V ^ N)%nat /\
  (forall (B : Type) (f : nat -> B) (l : list B),
     NoDup l -> (forall b, In b l -> exists t, (t < V)%nat /\ f t = b) -> (length l <= V)%nat).
Proof.
  intros HV HN HT.
  assert (Hid : map (completion V N T) (seqs V N) = seqs V N).
  { rewrite <- map_id. apply map_ext_in. intros ys Hys.
    apply virtual_token_any_sequence; assumption. }
  rewrite Hid. split; [apply seqs_NoDup |]. split; [apply seqs_length |]. split.
  - rewrite <- (Nat.pow_1_r V) at 1. apply Nat.pow_lt_mono_r; lia.
  - intros B f l. apply hard_token_at_most_V.
Qed.

(** * Theorem 2: one virtual token selects any of the [V^V] maps *)

(** The map one virtual token (table [ms]) selects: input [x] to the decoded token. *)
Definition selected_map (V : nat) (T : R) (ms : list nat) : list nat :=
  map (fun x => argmax V (dec_logit V (cond_out V 1 0 T (fun _ i => nth i ms 0%nat) (fun _ => x))))
      (seq 0 V).

Theorem virtual_token_any_map (V : nat) (T : R) (ms : list nat) :
  (2 <= V)%nat -> exp T > 4 * INR V - 3 -> In ms (seqs V V) -> selected_map V T ms = ms.
Proof.
  intros HV HT Hin. apply in_seqs in Hin. destruct Hin as [Hl HF].
  rewrite Forall_forall in HF.
  assert (Hms : forall i, (i < V)%nat -> (nth i ms 0%nat < V)%nat)
    by (intros i Hi; apply HF, nth_In; lia).
  unfold selected_map. transitivity (map (fun i => nth i ms 0%nat) (seq 0 V)).
  2: { rewrite <- Hl. apply map_nth_seq_self. }
  apply map_ext_in. intros x Hx. apply in_seq in Hx.
  apply argmax_decodes; [apply Hms; lia |].
  apply (conditional_step V 1 0 T (fun _ i => nth i ms 0%nat) (fun _ => x)); try lia.
  - simpl INR. lra.
  - intros r' i _ Hi. apply Hms, Hi.
Qed.

Theorem capacity_maps (V : nat) (T : R) :
  (2 <= V)%nat -> exp T > 4 * INR V - 3 ->
  NoDup (map (selected_map V T) (seqs V V)) /\
  length (map (selected_map V T) (seqs V V)) = (V ^ V)%nat /\
  (forall n, (n < V)%nat -> (V ^ n < V ^ V)%nat).
Proof.
  intros HV HT.
  assert (Hid : map (selected_map V T) (seqs V V) = seqs V V).
  { rewrite <- map_id. apply map_ext_in. intros ms Hms. apply virtual_token_any_map; assumption. }
  rewrite Hid. split; [apply seqs_NoDup |]. split; [apply seqs_length |].
  intros n Hn. apply hard_prompt_needs_V_tokens; assumption.
Qed.

(** The false claim of the negative control, refuted: no model has a hard token set that
    reaches [V + 1] distinct behaviours. *)
Theorem hard_token_not_V_plus_1 {B : Type} (V : nat) (f : nat -> B) :
  ~ exists l : list B, NoDup l /\ length l = S V /\
      forall b, In b l -> exists t, (t < V)%nat /\ f t = b.
Proof.
  intros [l [Hnd [Hl Hall]]]. pose proof (hard_token_at_most_V V f l Hnd Hall). lia.
Qed.
