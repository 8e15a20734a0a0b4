// Meta-embedding generator and its exact meta-gradient (meta_emb.h).
#include "meta_emb.h"

#include <cmath>

namespace fewrec::models::metaemb {

namespace {

double sigmoid(double z) { return z >= 0 ? 1.0 / (1.0 + std::exp(-z)) : std::exp(z) / (1.0 + std::exp(z)); }
// -log sigmoid(z), stable.
double softplus_neg(double z) { return z >= 0 ? std::log1p(std::exp(-z)) : -z + std::log1p(std::exp(z)); }

double dot(const float* a, const double* b, int32_t d) {
  double s = 0;
  for (int32_t k = 0; k < d; ++k) s += static_cast<double>(a[k]) * b[k];
  return s;
}

}  // namespace

Generator Generator::zeros(int32_t d) {
  Generator g;
  g.dim = d;
  g.theta.assign(size_for(d), 0.0f);
  return g;
}

void Generator::apply(const float* c, float* e, float* beta) const {
  const size_t d = static_cast<size_t>(dim);
  const float* W = theta.data();
  const float* a = W + d * d;
  const float* g = a + d;
  for (size_t r = 0; r < d; ++r) {
    double s = a[r];
    for (size_t k = 0; k < d; ++k) s += static_cast<double>(W[r * d + k]) * c[k];
    e[r] = static_cast<float>(s);
  }
  double b = g[d];
  for (size_t k = 0; k < d; ++k) b += static_cast<double>(g[k]) * c[k];
  *beta = static_cast<float>(b);
}

namespace {

// Adds the chain rule of (dE, dbeta) at content c to the parameter gradient.
void backprop(const float* c, const double* de, double dbeta, size_t d, std::vector<double>& G) {
  const size_t off_a = d * d, off_g = off_a + d, off_g0 = off_g + d;
  for (size_t r = 0; r < d; ++r) {
    if (de[r] != 0.0)
      for (size_t k = 0; k < d; ++k) G[r * d + k] += de[r] * c[k];
    G[off_a + r] += de[r];
    G[off_g + r] += dbeta * c[r];
  }
  G[off_g0] += dbeta;
}

// A generated item: x = c + e, b = cb + beta.
struct Generated {
  std::vector<double> x;
  double b = 0;
};

Generated generate(const Generator& gen, const float* c, float cb) {
  const size_t d = static_cast<size_t>(gen.dim);
  std::vector<float> e(d);
  float beta = 0.0f;
  gen.apply(c, e.data(), &beta);
  Generated g;
  g.x.resize(d);
  for (size_t k = 0; k < d; ++k) g.x[k] = static_cast<double>(c[k]) + e[k];
  g.b = static_cast<double>(cb) + beta;
  return g;
}

}  // namespace

double meta_loss(const Generator& gen, const ItemTask& t, const MetaOptions& o, std::vector<double>* grad) {
  const int32_t d = gen.dim;
  const size_t du = static_cast<size_t>(d);
  const Generated item = generate(gen, t.content, t.content_bias);
  const size_t na = t.users_a.size(), nb = t.users_b.size();
  std::vector<Generated> neg_a(na), neg_b(nb);
  for (size_t r = 0; r < na; ++r) neg_a[r] = generate(gen, t.negatives_a[r], t.negative_bias_a[r]);
  for (size_t r = 0; r < nb; ++r) neg_b[r] = generate(gen, t.negatives_b[r], t.negative_bias_b[r]);
  // Cold set: z = p . (x_i - x_j) + b_i - b_j.
  std::vector<double> g_a(du, 0.0), sig_a(na);
  double loss_a = 0;
  for (size_t r = 0; r < na; ++r) {
    const float* p = t.users_a[r];
    const double z = dot(p, item.x.data(), d) - dot(p, neg_a[r].x.data(), d) + item.b - neg_a[r].b;
    const double s = sigmoid(z);
    sig_a[r] = s;
    loss_a += softplus_neg(z);
    for (size_t k = 0; k < du; ++k) g_a[k] -= (1.0 - s) * p[k];  // sum over A of dloss/de_i
  }
  const double inv_a = na ? 1.0 / static_cast<double>(na) : 0.0;
  double loss = o.alpha * loss_a * inv_a;
  // dM/dz per row of A (direct part), then the parts through the warm-up.
  std::vector<double> dz_a(na);
  for (size_t r = 0; r < na; ++r) dz_a[r] = -o.alpha * (1.0 - sig_a[r]) * inv_a;
  std::vector<double> de_i(du, 0.0);  // dM/de_i apart from the rows' dz
  double db_i = 0;
  std::vector<double> dz_b(nb, 0.0);
  if (o.alpha < 1.0 && nb > 0) {
    // e_i' = e_i - warm_lr g_a.
    std::vector<double> xw(du);
    for (size_t k = 0; k < du; ++k) xw[k] = item.x[k] - o.warm_lr * g_a[k];
    std::vector<double> g_b(du, 0.0);  // dM_B/de_i' (mean over B)
    double loss_b = 0;
    const double inv_b = 1.0 / static_cast<double>(nb);
    for (size_t r = 0; r < nb; ++r) {
      const float* p = t.users_b[r];
      const double z = dot(p, xw.data(), d) - dot(p, neg_b[r].x.data(), d) + item.b - neg_b[r].b;
      const double s = sigmoid(z);
      loss_b += softplus_neg(z);
      dz_b[r] = -(1.0 - o.alpha) * (1.0 - s) * inv_b;
      for (size_t k = 0; k < du; ++k) g_b[k] -= (1.0 - s) * p[k] * inv_b;
    }
    loss += (1.0 - o.alpha) * loss_b * inv_b;
    // Through e_i' = e_i + warm_lr sum_A (1 - s_r) p_r: d(1 - s_r)/dz_r =
    // -s_r (1 - s_r), so the warm-up adds to each A row's dz the term
    // -(1 - alpha) warm_lr s_r (1 - s_r) (p_r . g_b), and e_i' passes g_b on.
    for (size_t k = 0; k < du; ++k) de_i[k] += (1.0 - o.alpha) * g_b[k];
    for (size_t r = 0; r < na; ++r)
      dz_a[r] -= (1.0 - o.alpha) * o.warm_lr * sig_a[r] * (1.0 - sig_a[r]) * dot(t.users_a[r], g_b.data(), d);
  }
  if (t.weight != 1.0) {
    loss *= t.weight;
    for (double& x : dz_a) x *= t.weight;
    for (double& x : dz_b) x *= t.weight;
    for (double& x : de_i) x *= t.weight;
  }
  if (grad) {
    // z depends on (e_i, b_i) with sign +1 and on (e_j, b_j) with -1.
    std::vector<double> dj(du);
    for (size_t r = 0; r < na; ++r) {
      const float* p = t.users_a[r];
      for (size_t k = 0; k < du; ++k) {
        de_i[k] += dz_a[r] * p[k];
        dj[k] = -dz_a[r] * p[k];
      }
      db_i += dz_a[r];
      backprop(t.negatives_a[r], dj.data(), -dz_a[r], du, *grad);
    }
    for (size_t r = 0; r < nb; ++r) {
      const float* p = t.users_b[r];
      for (size_t k = 0; k < du; ++k) dj[k] = -dz_b[r] * p[k];
      db_i += dz_b[r];
      backprop(t.negatives_b[r], dj.data(), -dz_b[r], du, *grad);
    }
    backprop(t.content, de_i.data(), db_i, du, *grad);
  }
  return loss;
}

void Adam::step(std::vector<float>& theta, const std::vector<double>& grad) {
  constexpr double b1 = 0.9, b2 = 0.999, eps = 1e-8;
  ++t_;
  const double c1 = 1.0 - std::pow(b1, static_cast<double>(t_)), c2 = 1.0 - std::pow(b2, static_cast<double>(t_));
  for (size_t i = 0; i < theta.size(); ++i) {
    m_[i] = b1 * m_[i] + (1 - b1) * grad[i];
    v_[i] = b2 * v_[i] + (1 - b2) * grad[i] * grad[i];
    theta[i] -= static_cast<float>(lr_ * (m_[i] / c1) / (std::sqrt(v_[i] / c2) + eps));
  }
}

}  // namespace fewrec::models::metaemb
