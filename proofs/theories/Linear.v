(** Vectors and matrices of any size, and the linear algebra the theorems need:
    a homogeneous system with more unknowns than equations has a non-trivial
    solution, [m + 1] vectors in the span of [m] are linearly dependent, and a
    matrix has linearly independent rows iff it is onto. *)

Require Import Reals Lra Lia.
Require Import PrefixTheory.Sums.
Open Scope R_scope.

(** A vector is its sequence of coordinates; a matrix [M r c] has rows [r] and columns [c].
    Sizes are arguments of the operations, so every statement holds in every dimension. *)
Definition vec := nat -> R.
Definition mat := nat -> nat -> R.

Definition dot (d : nat) (u v : vec) : R := sum d (fun c => u c * v c).
Definition mv (d : nat) (M : mat) (x : vec) : vec := fun r => sum d (fun c => M r c * x c).
Definition vadd (u v : vec) : vec := fun c => u c + v c.
Definition vscale (a : R) (u : vec) : vec := fun c => a * u c.
Definition vsum (n : nat) (a : nat -> R) (u : nat -> vec) : vec :=
  fun c => sum n (fun p => a p * u p c).

Lemma dot_comm (d : nat) (u v : vec) : dot d u v = dot d v u.
Proof. unfold dot. apply sum_ext. intros. ring. Qed.

Lemma dot_add_l (d : nat) (u v w : vec) : dot d (vadd u v) w = dot d u w + dot d v w.
Proof. unfold dot, vadd. rewrite <- sum_plus. apply sum_ext. intros. ring. Qed.

Lemma dot_add_r (d : nat) (u v w : vec) : dot d w (vadd u v) = dot d w u + dot d w v.
Proof. unfold dot, vadd. rewrite <- sum_plus. apply sum_ext. intros. ring. Qed.

Lemma dot_scale_l (d : nat) (a : R) (u v : vec) : dot d (vscale a u) v = a * dot d u v.
Proof. unfold dot, vscale. rewrite <- sum_scal_l. apply sum_ext. intros. ring. Qed.

Lemma dot_scale_r (d : nat) (a : R) (u v : vec) : dot d u (vscale a v) = a * dot d u v.
Proof. unfold dot, vscale. rewrite <- sum_scal_l. apply sum_ext. intros. ring. Qed.

Lemma dot_self_nonneg (d : nat) (u : vec) : 0 <= dot d u u.
Proof. unfold dot. apply sum_nonneg. intros. apply Rle_0_sqr. Qed.

(** [u . u = 0] only for the zero vector (on the [d] coordinates). *)
Lemma dot_self_zero (d : nat) (u : vec) :
  dot d u u = 0 -> forall c, (c < d)%nat -> u c = 0.
Proof.
  intros H c Hc. unfold dot in H.
  pose proof (sum_nonneg_zero d (fun c => u c * u c) ltac:(intros; apply Rle_0_sqr) H c Hc).
  simpl in H0. nra.
Qed.

(** Finite choice: a witness for each of the first [m] indices gives one function. *)
Lemma finite_choice {A : Type} (m : nat) (P : nat -> A -> Prop) (a0 : A) :
  (forall r, (r < m)%nat -> exists x, P r x) ->
  exists f : nat -> A, forall r, (r < m)%nat -> P r (f r).
Proof.
  induction m as [| m IH]; intro H.
  - exists (fun _ => a0). intros; lia.
  - destruct IH as [f Hf]; [intros; apply H; lia |].
    destruct (H m ltac:(lia)) as [x Hx].
    exists (fun r => if Nat.eqb r m then x else f r). intros r Hr.
    destruct (Nat.eqb_spec r m) as [-> | Hne]; [exact Hx | apply Hf; lia].
Qed.

(** A finite sequence of reals is zero everywhere or has a non-zero term
    (decided with the real numbers' order, [Req_EM_T]). *)
Lemma all_zero_or_nonzero (n : nat) (f : nat -> R) :
  (forall i, (i < n)%nat -> f i = 0) \/ (exists i, (i < n)%nat /\ f i <> 0).
Proof.
  induction n as [| n IH].
  - left. intros; lia.
  - destruct IH as [H | [i [Hi Hf]]].
    + destruct (Req_EM_T (f n) 0) as [Hz | Hnz].
      * left. intros i Hi. destruct (Nat.eq_dec i n) as [-> | Hne]; [exact Hz | apply H; lia].
      * right. exists n. split; [lia | exact Hnz].
    + right. exists i. split; [lia | exact Hf].
Qed.

(** More unknowns than equations: [k] equations [sum_j A r j x j = 0] in [m > k] unknowns
    have a solution with some [x j <> 0] (Gaussian elimination, by induction on [k]). *)
Theorem homogeneous_nontrivial (k : nat) :
  forall (m : nat) (A : mat), (k < m)%nat ->
  exists x : vec, (exists j, (j < m)%nat /\ x j <> 0) /\
    forall r, (r < k)%nat -> sum m (fun j => A r j * x j) = 0.
Proof.
  induction k as [| k IH]; intros m A Hkm.
  - exists (fun _ => 1). split; [exists 0%nat; split; [lia | lra] | intros; lia].
  - destruct m as [| m]; [lia |].
    destruct (all_zero_or_nonzero (S m) (A k)) as [Hz | [j0 [Hj0 Ha]]].
    + (* the last equation is 0 = 0: solve the others *)
      destruct (IH (S m) A ltac:(lia)) as [x [Hnt Hx]].
      exists x. split; [exact Hnt |]. intros r Hr.
      destruct (Nat.eq_dec r k) as [-> | Hne]; [| apply Hx; lia].
      apply sum_zero_ext. intros j Hj. rewrite (Hz j Hj). ring.
    + (* eliminate unknown j0 with the last equation *)
      set (B := fun r j => A r (skip j0 j) - A r j0 * A k (skip j0 j) / A k j0).
      destruct (IH m B ltac:(lia)) as [y [[i0 [Hi0 Hy0]] Hy]].
      set (S0 := sum m (fun i => A k (skip j0 i) * y i)).
      set (x := fun j => if Nat.eqb j j0 then - S0 / A k j0
                         else y (if Nat.ltb j j0 then j else pred j)).
      assert (Hxs : forall i, x (skip j0 i) = y i).
      { intro i. unfold x, skip.
        destruct (Nat.ltb_spec i j0).
        - destruct (Nat.eqb_spec i j0); [lia |]. destruct (Nat.ltb_spec i j0); [reflexivity | lia].
        - destruct (Nat.eqb_spec (S i) j0); [lia |].
          destruct (Nat.ltb_spec (S i) j0); [lia | reflexivity]. }
      assert (Hx0 : x j0 = - S0 / A k j0).
      { unfold x. rewrite Nat.eqb_refl. reflexivity. }
      exists x. split.
      * exists (skip j0 i0). split; [apply skip_lt; lia | rewrite Hxs; exact Hy0].
      * intros r Hr. rewrite (sum_skip m j0) by lia. rewrite Hx0.
        rewrite (sum_ext m _ (fun i => A r (skip j0 i) * y i)) by (intros; rewrite Hxs; reflexivity).
        destruct (Nat.eq_dec r k) as [-> | Hne].
        -- fold S0. field. exact Ha.
        -- pose proof (Hy r ltac:(lia)) as Hb. unfold B in Hb.
           rewrite (sum_ext m _ (fun i => A r (skip j0 i) * y i
                                       - (A r j0 / A k j0) * (A k (skip j0 i) * y i))) in Hb
             by (intros; field; exact Ha).
           rewrite sum_minus, sum_scal_l in Hb. fold S0 in Hb.
           replace (A r j0 * (- S0 / A k j0)) with (- (A r j0 / A k j0 * S0)) by (field; exact Ha).
           lra.
Qed.

(** [m + 1] vectors [b 0 .. b m] in the span of [m] vectors [g 0 .. g (m-1)] are linearly
    dependent: a non-trivial combination of them is the zero vector (every coordinate). *)
Theorem span_dependent (m : nat) (g b : nat -> vec) (coef : nat -> nat -> R) :
  (forall k t, (k <= m)%nat -> b k t = sum m (fun p => coef k p * g p t)) ->
  exists lam : nat -> R, (exists k, (k <= m)%nat /\ lam k <> 0) /\
    forall t, sum (S m) (fun k => lam k * b k t) = 0.
Proof.
  intro Hb.
  destruct (homogeneous_nontrivial m (S m) (fun p k => coef k p) ltac:(lia))
    as [lam [[k [Hk Hl]] Hsol]].
  exists lam. split; [exists k; split; [lia | exact Hl] |].
  intro t.
  rewrite (sum_ext (S m) _ (fun k => sum m (fun p => lam k * coef k p * g p t)))
    by (intros k' Hk'; rewrite Hb by lia; rewrite <- sum_scal_l; apply sum_ext; intros; ring).
  rewrite sum_swap. apply sum_zero_ext. intros p Hp.
  rewrite (sum_ext (S m) _ (fun k => (coef k p * lam k) * g p t)) by (intros; ring).
  rewrite sum_scal_r, (Hsol p Hp). ring.
Qed.

(** Rank: the first [m] rows of [M] (as vectors of [d] coordinates) are linearly independent,
    or a non-trivial combination of them vanishes (rank-deficient). *)
Definition rows_independent (m d : nat) (M : mat) : Prop :=
  forall lam : vec,
    (forall c, (c < d)%nat -> sum m (fun r => lam r * M r c) = 0) ->
    forall r, (r < m)%nat -> lam r = 0.

Definition rank_deficient (m d : nat) (M : mat) : Prop :=
  exists lam : vec, (exists r, (r < m)%nat /\ lam r <> 0) /\
    forall c, (c < d)%nat -> sum m (fun r => lam r * M r c) = 0.

Lemma rank_deficient_not_independent (m d : nat) (M : mat) :
  rank_deficient m d M -> ~ rows_independent m d M.
Proof.
  intros [lam [[r [Hr Hl]] H]] Hind. apply Hl. exact (Hind lam H r Hr).
Qed.

(** [x |-> M x] reaches every target on the first [m] rows. *)
Definition onto (m d : nat) (M : mat) : Prop :=
  forall y : vec, exists x : vec, forall r, (r < m)%nat -> mv d M x r = y r.

Lemma sum_pull (m : nat) (b : R) (a g : nat -> R) :
  sum m (fun r => a r * (b * g r)) = b * sum m (fun r => a r * g r).
Proof. rewrite <- sum_scal_l. apply sum_ext. intros. ring. Qed.

Lemma mv_add (d : nat) (M : mat) (x y : vec) (r : nat) :
  mv d M (vadd x y) r = mv d M x r + mv d M y r.
Proof. unfold mv, vadd. rewrite <- sum_plus. apply sum_ext. intros. ring. Qed.

Lemma mv_scale (d : nat) (M : mat) (a : R) (x : vec) (r : nat) :
  mv d M (vscale a x) r = a * mv d M x r.
Proof. unfold mv, vscale. rewrite <- sum_scal_l. apply sum_ext. intros. ring. Qed.

Lemma onto_independent (m d : nat) (M : mat) : onto m d M -> rows_independent m d M.
Proof.
  intros Honto lam Hlam.
  destruct (Honto lam) as [x Hx].
  assert (Hzero : sum m (fun r => lam r * lam r) = 0).
  { rewrite (sum_ext m _ (fun r => lam r * mv d M x r)) by (intros r Hr; rewrite Hx; auto).
    unfold mv.
    rewrite (sum_ext m _ (fun r => sum d (fun c => lam r * M r c * x c)))
      by (intros; rewrite <- sum_scal_l; apply sum_ext; intros; ring).
    rewrite sum_swap. apply sum_zero_ext. intros c Hc.
    rewrite sum_scal_r, (Hlam c Hc). ring. }
  intros r Hr.
  exact (dot_self_zero m lam Hzero r Hr).
Qed.

(** Independent rows: the map is onto (by induction on the number of rows: a new
    independent row is not annihilated by the kernel of the previous ones). *)
Lemma independent_onto (d : nat) (M : mat) : forall m, rows_independent m d M -> onto m d M.
Proof.
  induction m as [| m IH]; intros Hind.
  - intro y. exists (fun _ => 0). intros; lia.
  - assert (Hind' : rows_independent m d M).
    { intros lam Hlam r Hr.
      set (lam' := fun r => if Nat.ltb r m then lam r else 0).
      assert (Hl' : lam' r = lam r) by (unfold lam'; destruct (Nat.ltb_spec r m); [reflexivity | lia]).
      rewrite <- Hl'. apply Hind; [| lia]. intros c Hc. rewrite sum_S.
      unfold lam' at 2. rewrite Nat.ltb_irrefl.
      rewrite (sum_ext m _ (fun r => lam r * M r c)); [rewrite Hlam by exact Hc; ring |].
      intros i Hi. unfold lam'. destruct (Nat.ltb_spec i m); [reflexivity | lia]. }
    pose proof (IH Hind') as Honto.
    (* a right inverse of the first m rows: columns N r with M N r = e_r *)
    destruct (finite_choice m (fun r x => forall r', (r' < m)%nat -> mv d M x r' = delta r' r)
                (fun _ => 0)) as [N HN].
    { intros r Hr. apply Honto. }
    (* z c = e_c - sum_r M r c N r lies in the kernel of the first m rows *)
    set (z := fun c t => delta t c - sum m (fun r => M r c * N r t)).
    assert (Hz : forall c r', (c < d)%nat -> (r' < m)%nat -> mv d M (z c) r' = 0).
    { intros c r' Hc Hr'. unfold mv, z.
      rewrite (sum_ext d _ (fun t => delta t c * M r' t
                                  - sum m (fun r => M r c * (M r' t * N r t))))
        by (intros; rewrite sum_pull; ring).
      rewrite sum_minus, sum_delta_l by exact Hc. rewrite sum_swap.
      rewrite (sum_ext m _ (fun r => M r c * mv d M (N r) r'))
        by (intros; unfold mv; rewrite <- sum_scal_l; reflexivity).
      rewrite (sum_ext m _ (fun r => delta r' r * M r c)) by (intros r Hr; rewrite HN by lia; ring).
      rewrite sum_delta_r by exact Hr'. ring. }
    destruct (all_zero_or_nonzero d (fun c => mv d M (z c) m)) as [Hall | [c [Hc Hnz]]].
    + (* row m would be a combination of the first m rows: contradiction *)
      exfalso.
      set (mu := fun r => mv d M (N r) m).
      set (lam := fun r => if Nat.ltb r m then mu r else if Nat.eqb r m then -1 else 0).
      assert (Hlm : lam m = -1) by (unfold lam; rewrite Nat.ltb_irrefl, Nat.eqb_refl; reflexivity).
      assert (H0 : lam m = 0).
      { apply Hind; [| lia]. intros c Hc. rewrite sum_S, Hlm.
        rewrite (sum_ext m _ (fun r => mu r * M r c))
          by (intros r Hr; unfold lam; destruct (Nat.ltb_spec r m); [reflexivity | lia]).
        pose proof (Hall c Hc) as Hzc. simpl in Hzc. unfold mv, z in Hzc.
        rewrite (sum_ext d _ (fun t => delta t c * M m t
                                    - sum m (fun r => M r c * (M m t * N r t)))) in Hzc
          by (intros; rewrite sum_pull; ring).
        rewrite sum_minus, sum_delta_l in Hzc by exact Hc. rewrite sum_swap in Hzc.
        rewrite (sum_ext m _ (fun r => mu r * M r c)) in Hzc
          by (intros; unfold mu, mv; rewrite <- sum_scal_r; apply sum_ext; intros; ring).
        lra. }
      lra.
    + (* adjust the last coordinate along z c *)
      intro y. destruct (Honto y) as [x0 Hx0].
      set (a := (y m - mv d M x0 m) / mv d M (z c) m).
      exists (vadd x0 (vscale a (z c))). intros r Hr.
      rewrite mv_add, mv_scale.
      destruct (Nat.eq_dec r m) as [-> | Hne].
      * unfold a. field. exact Hnz.
      * rewrite Hx0, Hz by lia. ring.
Qed.

Theorem independent_iff_onto (m d : nat) (M : mat) :
  rows_independent m d M <-> onto m d M.
Proof. split; [apply independent_onto | apply onto_independent]. Qed.

(** Independent rows fit in the dimension: [m <= d]. *)
Theorem independent_rows_le (m d : nat) (M : mat) : rows_independent m d M -> (m <= d)%nat.
Proof.
  intro Hind. destruct (Nat.le_gt_cases m d) as [H | H]; [exact H | exfalso].
  destruct (homogeneous_nontrivial d m (fun c r => M r c) H) as [lam [[r [Hr Hl]] Hsol]].
  apply Hl. apply Hind; [| exact Hr]. intros c Hc.
  rewrite <- (Hsol c Hc). apply sum_ext. intros. ring.
Qed.

(** More rows than columns: the rows are rank-deficient, whatever the entries. *)
Theorem wide_rank_deficient (m d : nat) (M : mat) : (d < m)%nat -> rank_deficient m d M.
Proof.
  intro H.
  destruct (homogeneous_nontrivial d m (fun c r => M r c) H) as [lam [Hnt Hsol]].
  exists lam. split; [exact Hnt |]. intros c Hc.
  rewrite <- (Hsol c Hc). apply sum_ext. intros. ring.
Qed.

(** Rank-deficient rows: some target is reached by no [x] (the non-trivial combination
    [lam] itself: [M x = lam] would give [lam . lam = lam^T M x = 0]). *)
Theorem rank_deficient_unreachable (m d : nat) (M : mat) :
  rank_deficient m d M ->
  exists y : vec, forall x : vec, ~ (forall r, (r < m)%nat -> mv d M x r = y r).
Proof.
  intros [lam [[r [Hr Hl]] Hlam]]. exists lam. intros x Hx.
  assert (Hzero : sum m (fun r => lam r * lam r) = 0).
  { rewrite (sum_ext m _ (fun r => lam r * mv d M x r)) by (intros r' Hr'; rewrite Hx; auto).
    unfold mv.
    rewrite (sum_ext m _ (fun r => sum d (fun c => lam r * M r c * x c)))
      by (intros; rewrite <- sum_scal_l; apply sum_ext; intros; ring).
    rewrite sum_swap. apply sum_zero_ext. intros c Hc.
    rewrite sum_scal_r, (Hlam c Hc). ring. }
  exact (Hl (dot_self_zero m lam Hzero r Hr)).
Qed.

(** Transpose, identity, and orthogonality ([R R^T = I] on the first [k] coordinates), used
    for positional rotations (RoPE is orthogonal). *)
Definition transpose (M : mat) : mat := fun r c => M c r.
Definition identity : mat := fun r c => delta r c.

Definition orthogonal (k : nat) (Rm : mat) : Prop :=
  forall v r, (r < k)%nat -> mv k Rm (mv k (transpose Rm) v) r = v r.

Lemma identity_orthogonal (k : nat) : orthogonal k identity.
Proof.
  intros v r Hr. unfold mv, transpose, identity.
  rewrite (sum_ext k _ (fun c => delta r c * v c)).
  - apply sum_delta_r, Hr.
  - intros c Hc. f_equal. apply sum_delta_l, Hc.
Qed.

Lemma mv_ext (k : nat) (M : mat) (u w : vec) (r : nat) :
  (forall c, (c < k)%nat -> u c = w c) -> mv k M u r = mv k M w r.
Proof. intro H. unfold mv. apply sum_ext. intros c Hc. rewrite H by exact Hc. reflexivity. Qed.
