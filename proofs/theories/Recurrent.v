(** Recurrent and state-space layers: a diagonal linear recurrence
    [s_t = a_t * s_(t-1) + b_t], coordinate by coordinate, over sequences of any length and a
    state of any dimension (docs/theory.md §5.1).  [run a b s0 t] is the state after the first
    [t] positions, starting from [s0]; the decays [a] and drives [b] may depend on the position
    (through its input), so the same definitions cover LTI and selective state-space models,
    gated linear recurrences and decayed linear attention. *)

Require Import Reals Lra Lia FunctionalExtensionality.
Require Import PrefixTheory.Sums PrefixTheory.Linear PrefixTheory.Softmax.
Open Scope R_scope.

Fixpoint run (a b : nat -> vec) (s0 : vec) (t : nat) : vec :=
  match t with
  | O => s0
  | S t' => fun c => a t' c * run a b s0 t' c + b t' c
  end.

(** The product of the first [t] terms of a sequence. *)
Fixpoint prod (t : nat) (f : nat -> R) : R :=
  match t with
  | O => 1
  | S t' => prod t' f * f t'
  end.

(** How much of the entering state is left after [t] positions, per coordinate. *)
Definition propagated (a : nat -> vec) (t : nat) : vec := fun c => prod t (fun r => a r c).

Definition zero : vec := fun _ => 0.

(** ** recurrent_state: the content's state plus the propagated entering state. *)
Theorem state_decomposition (a b : nat -> vec) (s0 : vec) (t c : nat) :
  run a b s0 t c = run a b zero t c + propagated a t c * s0 c.
Proof.
  induction t as [| t IH]; unfold propagated in *; simpl; [unfold zero; ring |].
  rewrite IH. ring.
Qed.

(** The output, an affine map of the state (a matrix [M] on [dim] state coordinates plus a
    term [k] of the input; both may depend on the position), moves by [M] applied to the
    propagated state only. *)
Theorem output_decomposition (dim : nat) (M : mat) (k : vec) (a b : nat -> vec) (s0 : vec)
    (t c : nat) :
  mv dim M (run a b s0 t) c + k c =
  (mv dim M (run a b zero t) c + k c) + mv dim M (fun e => propagated a t e * s0 e) c.
Proof.
  unfold mv. rewrite (sum_ext dim _ (fun e => M c e * run a b zero t e
                                             + M c e * (propagated a t e * s0 e)))
    by (intros; rewrite state_decomposition; ring).
  rewrite sum_plus. ring.
Qed.

Lemma run_ext (a a' b b' : nat -> vec) (s0 : vec) (t c : nat) :
  (forall r e, (r < t)%nat -> a r e = a' r e /\ b r e = b' r e) ->
  run a b s0 t c = run a' b' s0 t c.
Proof.
  revert c. induction t as [| t IH]; intros c H; simpl; [reflexivity |].
  destruct (H t c ltac:(lia)) as [Ha Hb]. rewrite Ha, Hb, IH by (intros; apply H; lia).
  reflexivity.
Qed.

(** A context of [np] virtual positions (decays [ap], drives [bp]) in front of the content
    reaches the content only through the state it leaves behind. *)
Theorem prefix_enters_as_state (np : nat) (ap bp ac bc : nat -> vec) (s0 : vec) (t c : nat) :
  run (cat np ap ac) (cat np bp bc) s0 (np + t) c = run ac bc (run ap bp s0 np) t c.
Proof.
  revert c. induction t as [| t IH]; intro c.
  - rewrite Nat.add_0_r. change (run ac bc (run ap bp s0 np) 0 c) with (run ap bp s0 np c).
    apply run_ext. intros r e Hr.
    rewrite !cat_prefix by exact Hr. split; reflexivity.
  - rewrite Nat.add_succ_r. simpl. rewrite IH, !cat_content. reflexivity.
Qed.

(** ** initial_state: one layer whose decay, drive and readout are functions of the position's
    input [x t] (and, for the readout, the state): the outputs of the content positions with
    the virtual inputs [xp] in front equal those from the initial state [xp] leaves. *)
Definition states (A B : vec -> vec) (x : nat -> vec) (s0 : vec) (t : nat) : vec :=
  run (fun r => A (x r)) (fun r => B (x r)) s0 t.

Definition output (A B : vec -> vec) (Y : vec -> vec -> vec) (x : nat -> vec) (s0 : vec)
    (t : nat) : vec :=
  Y (x t) (states A B x s0 (S t)).

Lemma states_ext (A B : vec -> vec) (x x' : nat -> vec) (s0 : vec) (t c : nat) :
  (forall r, x r = x' r) -> states A B x s0 t c = states A B x' s0 t c.
Proof. intro H. apply run_ext. intros r e _. rewrite H. split; reflexivity. Qed.

Lemma output_ext (A B : vec -> vec) (Y : vec -> vec -> vec) (x x' : nat -> vec) (s0 : vec)
    (t : nat) :
  (forall r, x r = x' r) -> output A B Y x s0 t = output A B Y x' s0 t.
Proof.
  intro H. unfold output. rewrite H. f_equal.
  apply functional_extensionality. intro c. apply states_ext, H.
Qed.

Theorem prefix_is_initial_state (A B : vec -> vec) (Y : vec -> vec -> vec) (np : nat)
    (xp xc : nat -> vec) (s0 : vec) (t : nat) :
  output A B Y (cat np xp xc) s0 (np + t) = output A B Y xc (states A B xp s0 np) t.
Proof.
  unfold output. rewrite cat_content. f_equal.
  apply functional_extensionality. intro c. unfold states.
  replace (S (np + t)) with (np + S t)%nat by lia.
  rewrite <- (prefix_enters_as_state np (fun r => A (xp r)) (fun r => B (xp r))
                (fun r => A (xc r)) (fun r => B (xc r))).
  apply run_ext. intros r e _. unfold cat.
  destruct (Nat.ltb r np); split; reflexivity.
Qed.

(** A deep model: layer [l] has its own maps; with a hidden-state prefix its virtual inputs
    [xp l] are free at every layer, its content inputs are the previous layer's content
    outputs.  The run from the initial states [states (xp l)] gives every layer the same
    content inputs, so the same logits. *)
Fixpoint content_prefixed (A B : nat -> vec -> vec) (Y : nat -> vec -> vec -> vec) (np : nat)
    (xp : nat -> nat -> vec) (xc : nat -> vec) (l : nat) : nat -> vec :=
  match l with
  | O => xc
  | S l' => fun t => output (A l') (B l') (Y l')
                            (cat np (xp l') (content_prefixed A B Y np xp xc l')) zero (np + t)
  end.

Fixpoint content_initial (A B : nat -> vec -> vec) (Y : nat -> vec -> vec -> vec) (np : nat)
    (xp : nat -> nat -> vec) (xc : nat -> vec) (l : nat) : nat -> vec :=
  match l with
  | O => xc
  | S l' => fun t => output (A l') (B l') (Y l') (content_initial A B Y np xp xc l')
                            (states (A l') (B l') (xp l') zero np) t
  end.

Theorem deep_prefix_is_initial_state (A B : nat -> vec -> vec) (Y : nat -> vec -> vec -> vec)
    (np : nat) (xp : nat -> nat -> vec) (xc : nat -> vec) (l t : nat) :
  content_prefixed A B Y np xp xc l t = content_initial A B Y np xp xc l t.
Proof.
  revert t. induction l as [| l IH]; intro t; [reflexivity |]. simpl.
  rewrite prefix_is_initial_state. apply output_ext, IH.
Qed.

(** ** recurrent_bias: the form of the propagated term. *)

(** The product of positive decays is the exponential of the summed log-decays. *)
Theorem propagator_exp_sum (t : nat) (g : nat -> R) :
  prod t (fun r => exp (g r)) = exp (sum t g).
Proof.
  induction t as [| t IH]; simpl; [rewrite exp_0; reflexivity |].
  rewrite IH, exp_plus. reflexivity.
Qed.

(** Time-invariant decay: a geometric decay with the distance. *)
Theorem propagator_time_invariant (t : nat) (a : R) : prod t (fun _ => a) = a ^ t.
Proof. induction t as [| t IH]; simpl; [reflexivity | rewrite IH; ring]. Qed.

Theorem propagator_bounds (t : nat) (a : nat -> R) :
  (forall r, 0 < a r <= 1) -> 0 < prod t a <= 1.
Proof.
  intro H. induction t as [| t IH]; simpl; [lra |].
  destruct (H t). destruct IH. split; [nra |].
  apply (Rle_trans _ (prod t a * 1)); [apply Rmult_le_compat_l; lra | lra].
Qed.

Theorem propagator_non_increasing (t : nat) (a : nat -> R) :
  (forall r, 0 < a r <= 1) -> prod (S t) a <= prod t a.
Proof.
  intro H. simpl. destruct (propagator_bounds t a H). destruct (H t).
  apply (Rle_trans _ (prod t a * 1)); [apply Rmult_le_compat_l; lra | lra].
Qed.

(** Time-invariant decay: the state change a context causes is [abar^t * sigma], the same
    for every content (every drive sequence [b], [b']); with a readout whose linear part does
    not read the input, so is the output bias. *)
Theorem input_free_bias (abar : vec) (b b' : nat -> vec) (sigma : vec) (t c : nat) :
  run (fun _ => abar) b sigma t c - run (fun _ => abar) b zero t c =
  run (fun _ => abar) b' sigma t c - run (fun _ => abar) b' zero t c /\
  run (fun _ => abar) b sigma t c - run (fun _ => abar) b zero t c = abar c ^ t * sigma c.
Proof.
  rewrite !(state_decomposition (fun _ => abar) _ sigma t c). unfold propagated.
  rewrite propagator_time_invariant. split; ring.
Qed.

(** Retention: [np] virtual inputs leave [sigma d e = sum_p w_p k_p d v_p e]; the output bias
    [g q . sigma] (any decay factor [g]) lies in the span of the virtual values [v_p]. *)
Theorem retention_bias_span (np dk : nat) (w g : R) (wp : nat -> R) (k v : nat -> vec) (q : vec) :
  exists coef : nat -> R, forall e,
    g * sum dk (fun d => q d * sum np (fun p => wp p * k p d * v p e)) =
    sum np (fun p => coef p * v p e).
Proof.
  exists (fun p => g * wp p * dot dk q (k p)). intro e. unfold dot.
  rewrite <- sum_scal_l.
  rewrite (sum_ext dk _ (fun d => sum np (fun p => g * (q d * (wp p * k p d * v p e)))))
    by (intros; rewrite <- !sum_scal_l; apply sum_ext; intros; ring).
  rewrite sum_swap. apply sum_ext. intros p _.
  transitivity (g * wp p * v p e * sum dk (fun c => q c * k p c)); [| ring].
  rewrite <- sum_scal_l. apply sum_ext. intros. ring.
Qed.

(** ** initial_state_strict: fewer virtual inputs than state coordinates. *)

(** The states [np] virtual inputs leave in one channel of an LTI SSM (decays [abar], input
    map [B], one scalar input [u p] per position) are combinations of [np] fixed vectors. *)
Theorem lti_reachable_span (np : nat) (abar B : vec) (u : nat -> R) (s : nat) :
  run (fun _ => abar) (fun p e => B e * u p) zero np s =
  sum np (fun p => u p * (abar s ^ (np - S p) * B s)).
Proof.
  induction np as [| n IH]; [reflexivity |].
  change (abar s * run (fun _ => abar) (fun p e => B e * u p) zero n s + B s * u n =
          sum n (fun p => u p * (abar s ^ (S n - S p) * B s)) + u n * (abar s ^ (S n - S n) * B s)).
  rewrite IH, Nat.sub_diag, <- sum_scal_l. simpl pow.
  replace (B s * u n) with (u n * (1 * B s)) by ring. f_equal.
  apply sum_ext. intros p Hp. simpl minus. replace (n - p)%nat with (S (n - S p)) by lia.
  simpl pow. ring.
Qed.

(** Some vector of [ds] coordinates is no combination of [np < ds] given vectors [g p]: the
    [ds x np] matrix [g p s] has more rows than columns, so its rows are dependent. *)
Theorem outside_span (ds np : nat) (g : nat -> vec) :
  (np < ds)%nat ->
  exists y : vec, forall coef : nat -> R,
    ~ (forall s, (s < ds)%nat -> sum np (fun p => coef p * g p s) = y s).
Proof.
  intro Hlt.
  destruct (rank_deficient_unreachable ds np (fun s p => g p s) (wide_rank_deficient _ _ _ Hlt))
    as [y Hy].
  exists y. intros coef Hc. apply (Hy coef). intros s Hs. unfold mv.
  rewrite <- (Hc s Hs). apply sum_ext. intros. ring.
Qed.

(** An LTI channel with [ds > np] state coordinates: some initial state is the state of no
    [np] virtual inputs, whatever the decays and the input map. *)
Theorem initial_state_strict (ds np : nat) (abar B : vec) :
  (np < ds)%nat ->
  exists sigma : vec, forall u : nat -> R,
    ~ (forall s, (s < ds)%nat -> run (fun _ => abar) (fun p e => B e * u p) zero np s = sigma s).
Proof.
  intro Hlt.
  destruct (outside_span ds np (fun p s => abar s ^ (np - S p) * B s) Hlt) as [y Hy].
  exists y. intros u Hu. apply (Hy u). intros s Hs.
  rewrite <- (Hu s Hs), lti_reachable_span. reflexivity.
Qed.

(** Retention: the state [np] virtual inputs leave, [sigma d e = sum_p w_p k_p d v_p e], has
    rank at most [np]: any [np + 1] of its rows are linearly dependent. *)
Theorem retention_rank_bound (np : nat) (wp : nat -> R) (k v : nat -> vec) :
  exists lam : nat -> R, (exists d, (d <= np)%nat /\ lam d <> 0) /\
    forall e, sum (S np) (fun d => lam d * sum np (fun p => wp p * k p d * v p e)) = 0.
Proof.
  apply (span_dependent np v (fun d e => sum np (fun p => wp p * k p d * v p e))
           (fun d p => wp p * k p d)).
  intros. apply sum_ext. intros. ring.
Qed.
