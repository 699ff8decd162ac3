(** Softmax attention of one query, over key sequences of any length.

    A query's logits are a finite sequence [l 0 .. l (n-1)]: [l j] stands for
    [T q . k_j] (any scale, bias, positional term or mask already applied: a masked key
    is simply not in the sequence).  With a context the virtual (prefix) positions come
    first: [cat np lp lc] lists the [np] prefix logits [lp], then the [n] content logits [lc]. *)

Require Import Reals Lra Lia.
Require Import PrefixTheory.Sums PrefixTheory.Linear.
Open Scope R_scope.

Definition Z (n : nat) (l : nat -> R) : R := sum n (fun j => exp (l j)).

Definition softmax (n : nat) (l : nat -> R) (j : nat) : R := exp (l j) / Z n l.

(** The head output: the attention-weighted sum of the value vectors (any dimension). *)
Definition attend (n : nat) (l : nat -> R) (v : nat -> vec) : vec :=
  fun c => sum n (fun j => softmax n l j * v j c).

(** [np] virtual positions first, then the content. *)
Definition cat {A : Type} (np : nat) (a b : nat -> A) : nat -> A :=
  fun j => if Nat.ltb j np then a j else b (j - np)%nat.

(** Attention with a context: the query's softmax over the [np + n] keys. *)
Definition weight_pt (np n : nat) (lp lc : nat -> R) (j : nat) : R :=
  softmax (np + n) (cat np lp lc) j.

(** The share of attention spent on the virtual positions. *)
Definition prefix_mass (np n : nat) (lp lc : nat -> R) : R :=
  sum np (fun p => weight_pt np n lp lc p).

Lemma cat_prefix {A : Type} (np : nat) (a b : nat -> A) (p : nat) :
  (p < np)%nat -> cat np a b p = a p.
Proof. intro H. unfold cat. destruct (Nat.ltb_spec p np); [reflexivity | lia]. Qed.

Lemma cat_content {A : Type} (np : nat) (a b : nat -> A) (j : nat) :
  cat np a b (np + j) = b j.
Proof.
  unfold cat. destruct (Nat.ltb_spec (np + j) np); [lia |]. f_equal. lia.
Qed.

Lemma Z_nonneg (n : nat) (l : nat -> R) : 0 <= Z n l.
Proof. apply sum_nonneg. intros. left. apply exp_pos. Qed.

Lemma Z_pos (n : nat) (l : nat -> R) : (0 < n)%nat -> 0 < Z n l.
Proof. intro H. apply sum_pos; [exact H | intros; apply exp_pos]. Qed.

Lemma Z_ext (n : nat) (l l' : nat -> R) :
  (forall j, (j < n)%nat -> l j = l' j) -> Z n l = Z n l'.
Proof. intro H. apply sum_ext. intros j Hj. rewrite H by exact Hj. reflexivity. Qed.

(** The normaliser of prefix + content is the prefix mass [P] plus the content normaliser [Z]. *)
Lemma Z_cat (np n : nat) (lp lc : nat -> R) :
  Z (np + n) (cat np lp lc) = Z np lp + Z n lc.
Proof.
  unfold Z. rewrite sum_split. f_equal.
  - apply sum_ext. intros p Hp. rewrite cat_prefix by exact Hp. reflexivity.
  - apply sum_ext. intros j _. rewrite cat_content. reflexivity.
Qed.

Lemma softmax_nonneg (n : nat) (l : nat -> R) (j : nat) : 0 <= softmax n l j.
Proof.
  unfold softmax. apply Rmult_le_pos; [left; apply exp_pos |].
  destruct (Req_EM_T (Z n l) 0) as [H0 | H0].
  - rewrite H0, Rinv_0. lra.
  - left. apply Rinv_0_lt_compat. pose proof (Z_nonneg n l). lra.
Qed.

Lemma softmax_sum (n : nat) (l : nat -> R) : (0 < n)%nat -> sum n (softmax n l) = 1.
Proof.
  intro H. unfold softmax. rewrite sum_div. fold (Z n l).
  field. apply Rgt_not_eq, Z_pos, H.
Qed.

Lemma weight_pt_prefix (np n : nat) (lp lc : nat -> R) (p : nat) :
  (p < np)%nat -> weight_pt np n lp lc p = exp (lp p) / (Z np lp + Z n lc).
Proof.
  intro H. unfold weight_pt, softmax. rewrite Z_cat, cat_prefix by exact H. reflexivity.
Qed.

Lemma weight_pt_content (np n : nat) (lp lc : nat -> R) (j : nat) :
  weight_pt np n lp lc (np + j) = exp (lc j) / (Z np lp + Z n lc).
Proof. unfold weight_pt, softmax. rewrite Z_cat, cat_content. reflexivity. Qed.

Lemma prefix_mass_closed (np n : nat) (lp lc : nat -> R) :
  prefix_mass np n lp lc = Z np lp / (Z np lp + Z n lc).
Proof.
  unfold prefix_mass. rewrite (sum_ext np _ (fun p => exp (lp p) / (Z np lp + Z n lc))).
  - rewrite sum_div. reflexivity.
  - intros p Hp. apply weight_pt_prefix, Hp.
Qed.

Lemma prefix_mass_bounds (np n : nat) (lp lc : nat -> R) :
  (0 < n)%nat -> 0 <= prefix_mass np n lp lc < 1.
Proof.
  intro Hn. rewrite prefix_mass_closed.
  pose proof (Z_nonneg np lp). pose proof (Z_pos n lc Hn).
  split.
  - apply Rmult_le_pos; [lra | left; apply Rinv_0_lt_compat; lra].
  - apply (Rmult_lt_reg_r (Z np lp + Z n lc)); [lra |].
    unfold Rdiv. rewrite Rmult_assoc, Rinv_l by lra. lra.
Qed.

(** The head output with a context, split into the prefix and the content numerators. *)
Lemma attend_cat (np n : nat) (lp lc : nat -> R) (vp vc : nat -> vec) (c : nat) :
  attend (np + n) (cat np lp lc) (cat np vp vc) c =
  (sum np (fun p => exp (lp p) * vp p c) + sum n (fun j => exp (lc j) * vc j c))
  / (Z np lp + Z n lc).
Proof.
  unfold attend. rewrite sum_split. unfold Rdiv. rewrite Rmult_plus_distr_r.
  rewrite <- !sum_scal_r. f_equal.
  - apply sum_ext. intros p Hp. unfold softmax. rewrite Z_cat, !cat_prefix by exact Hp.
    unfold Rdiv. ring.
  - apply sum_ext. intros j _. unfold softmax. rewrite Z_cat, !cat_content.
    unfold Rdiv. ring.
Qed.

Lemma attend_closed (n : nat) (l : nat -> R) (v : nat -> vec) (c : nat) :
  attend n l v c = sum n (fun j => exp (l j) * v j c) / Z n l.
Proof.
  unfold attend, softmax. rewrite <- sum_div. apply sum_ext. intros. unfold Rdiv. ring.
Qed.

(** Without virtual positions the attention is the plain softmax over the content. *)
Lemma cat_0 {A : Type} (a b : nat -> A) (j : nat) : cat 0 a b j = b j.
Proof. unfold cat. simpl. rewrite Nat.sub_0_r. reflexivity. Qed.

Lemma weight_pt_0 (n : nat) (lp lc : nat -> R) (j : nat) :
  weight_pt 0 n lp lc j = softmax n lc j.
Proof.
  unfold weight_pt, softmax. simpl. rewrite cat_0.
  rewrite (Z_ext n (cat 0 lp lc) lc) by (intros; apply cat_0). reflexivity.
Qed.

Lemma attend_0 (n : nat) (lp lc : nat -> R) (vp vc : nat -> vec) (c : nat) :
  attend (0 + n) (cat 0 lp lc) (cat 0 vp vc) c = attend n lc vc c.
Proof.
  unfold attend. simpl. apply sum_ext. intros j _.
  unfold softmax. rewrite !cat_0, (Z_ext n (cat 0 lp lc) lc) by (intros; apply cat_0).
  reflexivity.
Qed.

(** Equal logits: the head averages its values. *)
Lemma attend_uniform (n : nat) (a : R) (l : nat -> R) (v : nat -> vec) (c : nat) :
  (0 < n)%nat -> (forall j, (j < n)%nat -> l j = a) ->
  attend n l v c = sum n (fun j => v j c) / INR n.
Proof.
  intros Hn Hl. rewrite attend_closed.
  rewrite (sum_ext n _ (fun j => exp a * v j c)) by (intros j Hj; rewrite Hl by exact Hj; reflexivity).
  unfold Z. rewrite (sum_ext n (fun j => exp (l j)) (fun _ => exp a))
    by (intros j Hj; rewrite Hl by exact Hj; reflexivity).
  rewrite sum_scal_l, sum_const. pose proof (exp_pos a).
  assert (0 < INR n) by (apply lt_0_INR; exact Hn).
  field. split; lra.
Qed.

(** Softmax ratios depend only on logit differences. *)
Lemma softmax_ratio (n : nat) (l : nat -> R) (j k : nat) :
  (0 < n)%nat -> softmax n l j / softmax n l k = exp (l j - l k).
Proof.
  intro Hn. unfold softmax. unfold Rminus. rewrite exp_plus, exp_Ropp.
  pose proof (Z_pos n l Hn). pose proof (exp_pos (l k)).
  field. split; lra.
Qed.

(** Two content keys: equal softmax weights force equal logit differences. *)
Lemma softmax2_eq (a b : nat -> R) :
  softmax 2 a 0 = softmax 2 b 0 -> a 1%nat - a 0%nat = b 1%nat - b 0%nat.
Proof.
  intro H. unfold softmax, Z in H. simpl in H.
  set (x0 := exp (a 0%nat)) in *. set (x1 := exp (a 1%nat)) in *.
  set (y0 := exp (b 0%nat)) in *. set (y1 := exp (b 1%nat)) in *.
  assert (0 < x0) by apply exp_pos. assert (0 < x1) by apply exp_pos.
  assert (0 < y0) by apply exp_pos. assert (0 < y1) by apply exp_pos.
  assert (Hx : x1 * y0 = y1 * x0).
  { apply (f_equal (fun t => t * ((0 + x0 + x1) * (0 + y0 + y1)))) in H.
    replace (x0 / (0 + x0 + x1) * ((0 + x0 + x1) * (0 + y0 + y1)))
      with (x0 * (0 + y0 + y1)) in H by (field; lra).
    replace (y0 / (0 + y0 + y1) * ((0 + x0 + x1) * (0 + y0 + y1)))
      with (y0 * (0 + x0 + x1)) in H by (field; lra).
    nra. }
  apply exp_inv. unfold Rminus. rewrite !exp_plus, !exp_Ropp. fold x0 x1 y0 y1.
  apply (Rmult_eq_reg_r (x0 * y0)); [| nra].
  field_simplify; [| lra | lra]. lra.
Qed.
