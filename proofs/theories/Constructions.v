(** The paper's section-3 constructions (docs/theory.md §2): the softmax temperature
    thresholds that make them decode correctly, for every vocabulary size [V], sequence
    length [N] and response length [N0].

    What is modelled is the computation at one decoding query, with the construction's
    attention (the softmax head over the virtual tokens and the visible content keys, with
    its logits and values), the MLP's slot selection ([ReLU(val_i + pos_i - 1)] resp.
    [ReLU(val_i + user_i - 1)], summed) and the scalar decoder
    [logit_k = (2k/V - 1) z + 1/4 - (k/V)^2].  The weight matrices that realise this
    computation in the residual stream are those of [constructions/] (checked numerically
    there), not restated here.

    - Theorem 1 (unconditional): if [e^T > (2V - 3) N], the query at every position
      [p <= N] decodes [y_{p-1}], whatever (valid) tokens precede it; the bound is tight.
    - Theorem 2 and longer responses (conditional): if [e^T > (4V - 3)(2 N0 - 1)], the
      query of response position [r < N0] decodes [m_r(x)] for every map table and user token. *)

Require Import Reals Lra Lia.
Require Import PrefixTheory.Sums PrefixTheory.Linear PrefixTheory.Softmax.
Open Scope R_scope.

Definition relu (x : R) : R := Rmax 0 x.

Lemma relu_nonpos (x : R) : x <= 0 -> relu x = 0.
Proof. intro H. unfold relu. apply Rmax_left. exact H. Qed.

Lemma relu_id (x : R) : 0 <= x -> relu x = x.
Proof. intro H. unfold relu. apply Rmax_right. exact H. Qed.

(** The scalar decoder: token [k]'s logit for the scalar [z]; [argmax_k] is the [k/V] nearest [z]. *)
Definition dec_logit (V : nat) (z : R) (k : nat) : R :=
  (2 * INR k / INR V - 1) * z + / 4 - (INR k / INR V) ^ 2.

Definition decodes_to (V : nat) (z : R) (y : nat) : Prop :=
  forall k, (k < V)%nat -> k <> y -> dec_logit V z k < dec_logit V z y.

Lemma dec_logit_diff (V : nat) (z : R) (y k : nat) :
  (0 < V)%nat ->
  dec_logit V z y - dec_logit V z k =
  (INR y / INR V - INR k / INR V) * (2 * z - INR y / INR V - INR k / INR V).
Proof.
  intro HV. assert (0 < INR V) by (apply lt_0_INR; exact HV).
  unfold dec_logit. field. lra.
Qed.

(** Decoding is right when [z] is within half a step [1/(2V)] of the target [y/V]. *)
Lemma decoder_margin (V y : nat) (z : R) :
  (0 < V)%nat -> Rabs (z - INR y / INR V) < / (2 * INR V) -> decodes_to V z y.
Proof.
  intros HV Hz k Hk Hne.
  assert (Hv : 0 < INR V) by (apply lt_0_INR; exact HV).
  assert (Hhalf : / (2 * INR V) = / INR V / 2) by (field; lra).
  rewrite Hhalf in Hz. apply Rabs_def2 in Hz. destruct Hz as [Hz1 Hz2].
  apply Rminus_gt_0_lt. rewrite dec_logit_diff by exact HV.
  assert (Hi : 0 < / INR V) by (apply Rinv_0_lt_compat; exact Hv).
  assert (Hstep : forall a b : nat, (a < b)%nat -> INR b / INR V - INR a / INR V >= / INR V).
  { intros a b Hab. assert (INR a + 1 <= INR b) by (rewrite <- S_INR; apply le_INR; lia).
    replace (INR b / INR V - INR a / INR V) with ((INR b - INR a) * / INR V) by (field; lra).
    nra. }
  destruct (Nat.lt_gt_cases k y) as [Hlt _].
  destruct (Nat.lt_total k y) as [Hky | [Hky | Hky]]; [| contradiction |].
  - pose proof (Hstep k y Hky). apply Rmult_lt_0_compat; lra.
  - pose proof (Hstep y k Hky).
    replace ((INR y / INR V - INR k / INR V) * (2 * z - INR y / INR V - INR k / INR V))
      with ((INR k / INR V - INR y / INR V) * (INR y / INR V + INR k / INR V - 2 * z)) by ring.
    apply Rmult_lt_0_compat; lra.
Qed.

(** A head whose logit is [T] on one key [k0] and 0 on the [n - 1] others. *)
Lemma attend_one_hot (n k0 : nat) (T : R) (l : nat -> R) (v : nat -> vec) (c : nat) :
  (k0 < n)%nat -> l k0 = T -> (forall j, (j < n)%nat -> j <> k0 -> l j = 0) ->
  attend n l v c = (exp T * v k0 c + (sum n (fun j => v j c) - v k0 c)) / (exp T + INR n - 1).
Proof.
  intros Hk Hl0 Hl. rewrite attend_closed. unfold Z.
  assert (He : forall j, (j < n)%nat -> exp (l j) = 1 + delta j k0 * (exp T - 1)).
  { intros j Hj. unfold delta. destruct (Nat.eqb_spec j k0) as [-> | Hne].
    - rewrite Hl0. ring.
    - rewrite Hl by assumption. rewrite exp_0. ring. }
  rewrite (sum_ext n (fun j => exp (l j) * v j c)
             (fun j => v j c + delta j k0 * ((exp T - 1) * v j c)))
    by (intros j Hj; rewrite He by exact Hj; ring).
  rewrite (sum_ext n (fun j => exp (l j)) (fun j => 1 + delta j k0 * (exp T - 1)))
    by exact He.
  rewrite !sum_plus, !sum_delta_l by exact Hk. rewrite sum_const.
  f_equal; ring.
Qed.

Lemma sum_bounds (n : nat) (f : nat -> R) (lo hi : R) :
  (forall i, (i < n)%nat -> lo <= f i <= hi) -> INR n * lo <= sum n f <= INR n * hi.
Proof.
  intro H. rewrite <- !sum_const. split; apply sum_le; intros i Hi; apply H, Hi.
Qed.

Lemma delta_bounds (i k : nat) : 0 <= delta i k <= 1.
Proof. unfold delta. destruct (Nat.eqb i k); lra. Qed.

Lemma token_value_bounds (V t : nat) :
  (t < V)%nat -> 0 <= INR t / INR V <= (INR V - 1) / INR V.
Proof.
  intro Ht. assert (0 < INR V) by (apply lt_0_INR; lia).
  assert (INR t + 1 <= INR V) by (rewrite <- S_INR; apply le_INR; lia).
  pose proof (pos_INR t). split.
  - apply Rmult_le_pos; [lra | left; apply Rinv_0_lt_compat; lra].
  - unfold Rdiv. apply Rmult_le_compat_r; [left; apply Rinv_0_lt_compat |]; lra.
Qed.

(** * Theorem 1: one virtual token, any sequence [y_0 .. y_{N-1}] *)

(** The query at position [p] (1 <= p <= N) sees the virtual token (key 0, logit T) and the
    content keys [1 .. p] (logit 0).  Value slot [i] of the virtual token is [y_i / V]; every
    slot of content key [j] holds its token [t_j / V] (BOS: 0). *)
Definition uncond_logits (T : R) : nat -> R := fun j => if Nat.eqb j 0 then T else 0.

Definition uncond_values (V : nat) (y t : nat -> nat) : nat -> vec :=
  fun j i => if Nat.eqb j 0 then INR (y i) / INR V else INR (t j) / INR V.

(** The MLP keeps slot [p - 1] ([ReLU(val_i + pos_{i+1} - 1)], the query's one-hot position)
    and sums it into the scalar [z] that the decoder reads. *)
Definition uncond_out (V N p : nat) (T : R) (y t : nat -> nat) : R :=
  sum N (fun i => relu (attend (S p) (uncond_logits T) (uncond_values V y t) i + delta (S i) p - 1)).

Lemma uncond_head (V p : nat) (T : R) (y t : nat -> nat) (i : nat) :
  attend (S p) (uncond_logits T) (uncond_values V y t) i =
  (exp T * (INR (y i) / INR V) + sum p (fun j => INR (t (S j)) / INR V)) / (exp T + INR p).
Proof.
  rewrite (attend_one_hot (S p) 0 T) by (lia || reflexivity ||
    (intros j _ Hj; unfold uncond_logits; destruct (Nat.eqb_spec j 0); [lia | reflexivity])).
  rewrite S_INR. change (S p) with (1 + p)%nat. rewrite sum_split. simpl.
  unfold uncond_values at 1 3. simpl. f_equal; [| ring].
  f_equal. f_equal. ring_simplify. apply sum_ext. intros j _. reflexivity.
Qed.

Theorem unconditional_step (V N p : nat) (T : R) (y t : nat -> nat) :
  (2 <= V)%nat -> (1 <= p)%nat -> (p <= N)%nat ->
  exp T > (2 * INR V - 3) * INR N ->
  (forall i, (i < N)%nat -> (y i < V)%nat) -> (forall j, (t j < V)%nat) ->
  decodes_to V (uncond_out V N p T y t) (y (p - 1)%nat).
Proof.
  intros HV Hp HpN HT Hy Ht.
  assert (Hv : 2 <= INR V) by (apply (le_INR 2 V) in HV; exact HV).
  assert (Hpr : 1 <= INR p) by (apply (le_INR 1 p) in Hp; exact Hp).
  assert (HpNr : INR p <= INR N) by (apply le_INR, HpN).
  pose proof (exp_pos T) as HE.
  set (E := exp T) in *. set (c := (INR V - 1) / INR V).
  assert (Hc1 : c < 1) by (unfold c; apply (Rmult_lt_reg_r (INR V)); [lra |];
                           unfold Rdiv; rewrite Rmult_assoc, Rinv_l; lra).
  set (z := fun i => attend (S p) (uncond_logits T) (uncond_values V y t) i).
  (* the head output of every slot: a proper mean of values in [0, c] *)
  assert (HS : 0 <= sum p (fun j => INR (t (S j)) / INR V) <= INR p * c).
  { pose proof (sum_bounds p (fun j => INR (t (S j)) / INR V) 0 c
      (fun j _ => token_value_bounds V (t (S j)) (Ht (S j)))). lra. }
  assert (Hz : forall i, (i < N)%nat ->
            0 <= z i /\ z i <= c /\ Rabs (z i - INR (y i) / INR V) <= INR p * c / (E + INR p)).
  { intros i Hi. unfold z. rewrite uncond_head. fold E.
    pose proof (token_value_bounds V (y i) (Hy i Hi)) as Ha. fold c in Ha.
    set (a := INR (y i) / INR V) in *. set (S0 := sum p (fun j => INR (t (S j)) / INR V)) in *.
    pose proof HS as HSi. fold S0 in HSi.
    assert (HD : 0 < E + INR p) by lra.
    split; [| split].
    - apply Rmult_le_pos; [nra | left; apply Rinv_0_lt_compat; lra].
    - apply (Rmult_le_reg_r (E + INR p)); [lra |].
      unfold Rdiv. rewrite Rmult_assoc, Rinv_l by lra. nra.
    - replace ((E * a + S0) / (E + INR p) - a) with ((S0 - INR p * a) / (E + INR p))
        by (field; lra).
      unfold Rdiv. rewrite Rabs_mult, (Rabs_right (/ (E + INR p)))
        by (left; apply Rinv_0_lt_compat; lra).
      apply Rmult_le_compat_r; [left; apply Rinv_0_lt_compat; lra |].
      apply Rabs_le. nra. }
  (* the MLP keeps slot p - 1 *)
  assert (Hout : uncond_out V N p T y t = z (p - 1)%nat).
  { unfold uncond_out. fold z.
    rewrite (sum_ext N _ (fun i => delta i (p - 1) * z i)).
    - apply sum_delta_l. lia.
    - intros i Hi. destruct (Hz i Hi) as [Hz0 [Hzc _]]. unfold delta.
      replace (attend (S p) (uncond_logits T) (uncond_values V y t) i) with (z i) by reflexivity.
      destruct (Nat.eqb_spec (S i) p) as [Heq | Hneq];
        destruct (Nat.eqb_spec i (p - 1)) as [Heq' | Hneq']; try lia.
      + rewrite relu_id by lra. ring.
      + rewrite relu_nonpos by lra. ring. }
  rewrite Hout. apply decoder_margin; [lia |].
  destruct (Hz (p - 1)%nat ltac:(lia)) as [_ [_ Herr]].
  eapply Rle_lt_trans; [exact Herr |].
  (* p c / (E + p) < 1 / (2V)  <=>  E > (2V - 3) p, implied by E > (2V - 3) N *)
  unfold c. apply (Rmult_lt_reg_r (2 * INR V * (E + INR p))); [nra |].
  replace (INR p * ((INR V - 1) / INR V) / (E + INR p) * (2 * INR V * (E + INR p)))
    with (2 * INR p * (INR V - 1)) by (field; lra).
  replace (/ (2 * INR V) * (2 * INR V * (E + INR p))) with (E + INR p) by (field; lra).
  nra.
Qed.

(** The threshold is tight: at [e^T <= (2V - 3) N] the sequence [V-1, ..., V-1] after
    content tokens of value 0 is decoded wrongly at position [N]. *)
Theorem unconditional_tight (V N : nat) (T : R) :
  (2 <= V)%nat -> (1 <= N)%nat -> exp T <= (2 * INR V - 3) * INR N ->
  ~ decodes_to V (uncond_out V N N T (fun _ => (V - 1)%nat) (fun _ => 0%nat)) (V - 1)%nat.
Proof.
  intros HV HN HT Hdec.
  assert (Hv : 2 <= INR V) by (apply (le_INR 2 V) in HV; exact HV).
  assert (HNr : 1 <= INR N) by (apply (le_INR 1 N) in HN; exact HN).
  pose proof (exp_pos T) as HE. set (E := exp T) in *.
  assert (HV1 : INR (V - 1) = INR V - 1) by (rewrite minus_INR by lia; reflexivity).
  assert (HV2 : INR (V - 2) = INR V - 2) by (rewrite minus_INR by lia; reflexivity).
  set (z := fun i => attend (S N) (uncond_logits T) (uncond_values V (fun _ => (V - 1)%nat) (fun _ => 0%nat)) i).
  assert (Hzv : forall i, z i = E * ((INR V - 1) / INR V) / (E + INR N)).
  { intro i. unfold z. rewrite uncond_head. fold E. rewrite HV1.
    rewrite sum_zero_ext by (intros; simpl; unfold Rdiv; ring). f_equal. ring. }
  assert (Hc : forall i, z i < 1).
  { intro i. rewrite Hzv. apply (Rmult_lt_reg_r (INR V * (E + INR N))); [nra |].
    replace (E * ((INR V - 1) / INR V) / (E + INR N) * (INR V * (E + INR N)))
      with (E * (INR V - 1)) by (field; lra). nra. }
  assert (Hout : uncond_out V N N T (fun _ => (V - 1)%nat) (fun _ => 0%nat) = z (N - 1)%nat).
  { unfold uncond_out. fold z.
    rewrite (sum_ext N _ (fun i => delta i (N - 1) * z i)).
    - apply sum_delta_l. lia.
    - intros i Hi. unfold delta.
      replace (attend (S N) (uncond_logits T)
                 (uncond_values V (fun _ => (V - 1)%nat) (fun _ => 0%nat)) i) with (z i) by reflexivity.
      destruct (Nat.eqb_spec (S i) N) as [Heq | Hneq];
        destruct (Nat.eqb_spec i (N - 1)) as [Heq' | Hneq']; try lia.
      + assert (0 <= z i).
        { rewrite Hzv. unfold Rdiv.
          repeat apply Rmult_le_pos; try lra; left; apply Rinv_0_lt_compat; lra. }
        rewrite relu_id by lra. ring.
      + rewrite relu_nonpos by (pose proof (Hc i); lra). ring. }
  specialize (Hdec (V - 2)%nat ltac:(lia) ltac:(lia)). rewrite Hout, Hzv in Hdec.
  apply Rlt_Rminus in Hdec. rewrite dec_logit_diff in Hdec by lia.
  rewrite HV1, HV2 in Hdec.
  replace ((INR V - 1) / INR V - (INR V - 2) / INR V) with (/ INR V) in Hdec by (field; lra).
  replace (2 * (E * ((INR V - 1) / INR V) / (E + INR N)) - (INR V - 1) / INR V - (INR V - 2) / INR V)
    with ((E - (2 * INR V - 3) * INR N) / (INR V * (E + INR N))) in Hdec by (field; lra).
  assert (0 < / INR V) by (apply Rinv_0_lt_compat; lra).
  assert (0 < / (INR V * (E + INR N))) by (apply Rinv_0_lt_compat; nra).
  assert (Hac : 0 < / INR V * / (INR V * (E + INR N))) by (apply Rmult_lt_0_compat; assumption).
  unfold Rdiv in Hdec.
  replace (/ INR V * ((E - (2 * INR V - 3) * INR N) * / (INR V * (E + INR N))))
    with ((E - (2 * INR V - 3) * INR N) * (/ INR V * / (INR V * (E + INR N)))) in Hdec by ring.
  nra.
Qed.

(** * Theorem 2 and responses of [N0] tokens: virtual tokens encode any map *)

(** The query of response position [r < N0] sees the [N0] virtual tokens (keys [0 .. N0-1]),
    the user token [x = tok 0] (key [N0]) and the earlier response tokens [tok 1 .. tok r]
    (keys [N0 + 1 .. N0 + r]).  Head 0 puts logit T on virtual token [r], whose value slot
    [i] is [m_r(i) / V] (content keys carry no value there); head 1 puts logit T on the user
    token and copies one-hot tokens. *)
Definition cond_logits0 (T : R) (r : nat) : nat -> R := fun j => if Nat.eqb j r then T else 0.
Definition cond_logits1 (T : R) (N0 : nat) : nat -> R := fun j => if Nat.eqb j N0 then T else 0.

Definition cond_values0 (V N0 : nat) (m : nat -> nat -> nat) : nat -> vec :=
  fun j i => if Nat.ltb j N0 then INR (m j i) / INR V else 0.

Definition cond_values1 (N0 : nat) (tok : nat -> nat) : nat -> vec :=
  fun j i => if Nat.ltb j N0 then 0 else delta (tok (j - N0)%nat) i.

Definition cond_val (V N0 r : nat) (T : R) (m : nat -> nat -> nat) (i : nat) : R :=
  attend (N0 + r + 1) (cond_logits0 T r) (cond_values0 V N0 m) i.

Definition cond_user (N0 r : nat) (T : R) (tok : nat -> nat) (i : nat) : R :=
  attend (N0 + r + 1) (cond_logits1 T N0) (cond_values1 N0 tok) i.

(** The MLP keeps the slot of the user token ([ReLU(val_i + user_i - 1)], summed). *)
Definition cond_out (V N0 r : nat) (T : R) (m : nat -> nat -> nat) (tok : nat -> nat) : R :=
  sum V (fun i => relu (cond_val V N0 r T m i + cond_user N0 r T tok i - 1)).

Lemma cond_val_closed (V N0 r : nat) (T : R) (m : nat -> nat -> nat) (i : nat) :
  (r < N0)%nat ->
  cond_val V N0 r T m i =
  (exp T * (INR (m r i) / INR V) + sum (N0 - 1) (fun j => INR (m (skip r j) i) / INR V))
  / (exp T + INR (N0 + r)).
Proof.
  intro Hr. unfold cond_val.
  rewrite (attend_one_hot (N0 + r + 1) r T) by (lia || (unfold cond_logits0; rewrite Nat.eqb_refl; reflexivity)
    || (intros j _ Hj; unfold cond_logits0; destruct (Nat.eqb_spec j r); [lia | reflexivity])).
  rewrite <- Nat.add_assoc, sum_split, (sum_zero_ext (r + 1)).
  2: { intros j _. unfold cond_values0. destruct (Nat.ltb_spec (N0 + j) N0); [lia | reflexivity]. }
  rewrite (sum_skip_lt N0 r) by exact Hr.
  assert (Hv0 : cond_values0 V N0 m r i = INR (m r i) / INR V)
    by (unfold cond_values0; destruct (Nat.ltb_spec r N0); [reflexivity | lia]).
  rewrite Hv0.
  rewrite (sum_ext (N0 - 1) _ (fun j => INR (m (skip r j) i) / INR V)).
  2: { intros j Hj. unfold cond_values0. pose proof (skip_lt r (N0 - 1) j ltac:(lia) Hj).
       destruct (Nat.ltb_spec (skip r j) N0); [reflexivity | lia]. }
  rewrite !plus_INR. simpl INR. f_equal; ring.
Qed.

Lemma cond_user_closed (N0 r : nat) (T : R) (tok : nat -> nat) (i : nat) :
  cond_user N0 r T tok i =
  (exp T * delta (tok 0%nat) i + sum r (fun j => delta (tok (S j)) i)) / (exp T + INR (N0 + r)).
Proof.
  unfold cond_user.
  rewrite (attend_one_hot (N0 + r + 1) N0 T) by (lia || (unfold cond_logits1; rewrite Nat.eqb_refl; reflexivity)
    || (intros j _ Hj; unfold cond_logits1; destruct (Nat.eqb_spec j N0); [lia | reflexivity])).
  replace (INR (N0 + r + 1)) with (INR (N0 + r) + 1) by (rewrite (plus_INR (N0 + r) 1); reflexivity).
  rewrite <- Nat.add_assoc, sum_split, (sum_zero_ext N0).
  2: { intros j Hj. unfold cond_values1. destruct (Nat.ltb_spec j N0); [reflexivity | lia]. }
  rewrite Nat.add_comm with (n := r), sum_split.
  unfold cond_values1. destruct (Nat.ltb_spec N0 N0); [lia |]. rewrite Nat.sub_diag.
  simpl. rewrite (sum_ext r _ (fun j => delta (tok (S j)) i)).
  2: { intros j _. destruct (Nat.ltb_spec (N0 + S j) N0); [lia |].
       replace (N0 + S j - N0)%nat with (S j) by lia. reflexivity. }
  destruct (Nat.ltb_spec (N0 + 0) N0); [lia |]. replace (N0 + 0 - N0)%nat with 0%nat by lia.
  f_equal; ring.
Qed.

Theorem conditional_step (V N0 r : nat) (T : R) (m : nat -> nat -> nat) (tok : nat -> nat) :
  (2 <= V)%nat -> (r < N0)%nat ->
  exp T > (4 * INR V - 3) * (2 * INR N0 - 1) ->
  (forall r' i, (r' < N0)%nat -> (i < V)%nat -> (m r' i < V)%nat) ->
  (forall j, (j <= r)%nat -> (tok j < V)%nat) ->
  decodes_to V (cond_out V N0 r T m tok) (m r (tok 0%nat)).
Proof.
  intros HV Hr HT Hm Htok.
  assert (Hv : 2 <= INR V) by (apply (le_INR 2 V) in HV; exact HV).
  assert (HN0 : 1 <= INR N0) by (apply (le_INR 1 N0); lia).
  assert (Hrr : INR r + 1 <= INR N0) by (rewrite <- S_INR; apply le_INR; lia).
  pose proof (pos_INR r) as Hr0.
  pose proof (exp_pos T) as HE. set (E := exp T) in *.
  set (x := tok 0%nat). assert (Hx : (x < V)%nat) by (apply Htok; lia).
  set (p := INR (N0 + r)). assert (Hp : p = INR N0 + INR r) by apply plus_INR.
  set (c := (INR V - 1) / INR V).
  assert (Hc1 : c < 1) by (unfold c; apply (Rmult_lt_reg_r (INR V)); [lra |];
                           unfold Rdiv; rewrite Rmult_assoc, Rinv_l; lra).
  assert (Hc0 : 0 <= c) by (unfold c; apply Rmult_le_pos; [lra | left; apply Rinv_0_lt_compat; lra]).
  (* bounds on the leaked sums *)
  assert (HS : forall i, (i < V)%nat ->
            0 <= sum (N0 - 1) (fun j => INR (m (skip r j) i) / INR V) <= (INR N0 - 1) * c).
  { intros i Hi. pose proof (sum_bounds (N0 - 1) (fun j => INR (m (skip r j) i) / INR V) 0 c) as B.
    rewrite minus_INR in B by lia. simpl INR in B. rewrite Rmult_0_r in B. apply B.
    intros j Hj. apply token_value_bounds, Hm; [pose proof (skip_lt r (N0 - 1) j ltac:(lia) Hj); lia | exact Hi]. }
  assert (HC : forall i, 0 <= sum r (fun j => delta (tok (S j)) i) <= INR r).
  { intro i. pose proof (sum_bounds r (fun j => delta (tok (S j)) i) 0 1
                           (fun j _ => delta_bounds (tok (S j)) i)). lra. }
  (* every slot but the user token's is cut by the ReLU *)
  assert (Hother : forall i, (i < V)%nat -> i <> x ->
            cond_val V N0 r T m i + cond_user N0 r T tok i - 1 <= 0).
  { intros i Hi Hix. rewrite cond_val_closed, cond_user_closed by exact Hr. fold E p x.
    unfold delta at 1. destruct (Nat.eqb_spec x i) as [Heq | _]; [congruence |].
    pose proof (token_value_bounds V (m r i) (Hm r i Hr Hi)) as Ha. fold c in Ha.
    pose proof (HS i Hi). pose proof (HC i).
    apply (Rmult_le_reg_r (E + p)); [lra |].
    replace (((E * (INR (m r i) / INR V) + sum (N0 - 1) (fun j => INR (m (skip r j) i) / INR V)) / (E + p)
              + (E * 0 + sum r (fun j => delta (tok (S j)) i)) / (E + p) - 1) * (E + p))
      with (E * (INR (m r i) / INR V) + sum (N0 - 1) (fun j => INR (m (skip r j) i) / INR V)
            + sum r (fun j => delta (tok (S j)) i) - (E + p)) by (field; lra).
    nra. }
  (* the user token's slot: the decoded scalar within [p (2V-1)/V / (E + p)] of the target *)
  set (w := cond_val V N0 r T m x + cond_user N0 r T tok x - 1).
  set (a := INR (m r x) / INR V).
  assert (Ha : 0 <= a <= c) by (apply token_value_bounds, Hm; assumption).
  assert (Hw : a - p * (1 + c) / (E + p) <= w <= a).
  { unfold w. rewrite cond_val_closed, cond_user_closed by exact Hr. fold E p x a.
    replace (delta x x) with 1 by (unfold delta; rewrite Nat.eqb_refl; reflexivity).
    pose proof (HS x Hx). pose proof (HC x).
    split; apply (Rmult_le_reg_r (E + p)); try lra.
    - replace ((a - p * (1 + c) / (E + p)) * (E + p)) with (a * (E + p) - p * (1 + c)) by (field; lra).
      replace (((E * a + sum (N0 - 1) (fun j => INR (m (skip r j) x) / INR V)) / (E + p)
                + (E * 1 + sum r (fun j => delta (tok (S j)) x)) / (E + p) - 1) * (E + p))
        with (E * a + sum (N0 - 1) (fun j => INR (m (skip r j) x) / INR V)
              + (E + sum r (fun j => delta (tok (S j)) x)) - (E + p)) by (field; lra).
      nra.
    - replace (((E * a + sum (N0 - 1) (fun j => INR (m (skip r j) x) / INR V)) / (E + p)
                + (E * 1 + sum r (fun j => delta (tok (S j)) x)) / (E + p) - 1) * (E + p))
        with (E * a + sum (N0 - 1) (fun j => INR (m (skip r j) x) / INR V)
              + (E + sum r (fun j => delta (tok (S j)) x)) - (E + p)) by (field; lra).
      nra. }
  assert (Hout : cond_out V N0 r T m tok = relu w).
  { unfold cond_out. rewrite (sum_ext V _ (fun i => delta i x * relu w)).
    - apply sum_delta_l, Hx.
    - intros i Hi. unfold delta. destruct (Nat.eqb_spec i x) as [-> | Hne].
      + fold w. ring.
      + rewrite relu_nonpos by (apply Hother; assumption). ring. }
  rewrite Hout. apply decoder_margin; [lia |]. fold a.
  (* |relu w - a| <= p (1 + c) / (E + p) < 1 / (2V) *)
  assert (Herr : Rabs (relu w - a) <= p * (1 + c) / (E + p)).
  { destruct (Rle_lt_dec 0 w) as [Hw0 | Hw0].
    - rewrite relu_id by exact Hw0. apply Rabs_le. lra.
    - rewrite relu_nonpos by lra. apply Rabs_le. lra. }
  eapply Rle_lt_trans; [exact Herr |].
  assert (Hp2 : p <= 2 * INR N0 - 1) by lra.
  unfold c. apply (Rmult_lt_reg_r (2 * INR V * (E + p))); [nra |].
  replace (p * (1 + (INR V - 1) / INR V) / (E + p) * (2 * INR V * (E + p)))
    with (2 * p * (2 * INR V - 1)) by (field; lra).
  replace (/ (2 * INR V) * (2 * INR V * (E + p))) with (E + p) by (field; lra).
  nra.
Qed.
