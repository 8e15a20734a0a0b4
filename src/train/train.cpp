#include "fewrec/train/train.h"

#include <dlfcn.h>

#include <cmath>
#include <filesystem>
#include <numbers>

#include <fmt/format.h>
#include <torch/optim/adagrad.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>
#include <torch/serialize.h>
#include <ATen/Parallel.h>

#include "fewrec/core/error.h"

namespace fewrec::train {

void set_threads(int threads) {
  at::set_num_threads(std::max(1, threads));
  // OpenBLAS, when it is the BLAS LibTorch calls: found at run time so other
  // BLAS builds still link.
  using SetThreads = void (*)(int);
  if (auto* f = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(1);
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(std::vector<torch::Tensor> parameters,
                                                        const OptimizerOptions& o) {
  FEWREC_CHECK(o.lr > 0 && std::isfinite(o.lr), kInvalidArgument, "learning rate must be positive, got {}", o.lr);
  FEWREC_CHECK(o.weight_decay >= 0, kInvalidArgument, "weight decay must be >= 0, got {}", o.weight_decay);
  if (o.name == "adam")
    return std::make_unique<torch::optim::Adam>(
        parameters,
        torch::optim::AdamOptions(o.lr).betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(o.weight_decay));
  if (o.name == "adamw")
    return std::make_unique<torch::optim::AdamW>(
        parameters,
        torch::optim::AdamWOptions(o.lr).betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(o.weight_decay));
  if (o.name == "adagrad")
    return std::make_unique<torch::optim::Adagrad>(
        parameters, torch::optim::AdagradOptions(o.lr).eps(o.eps).weight_decay(o.weight_decay));
  if (o.name == "sgd")
    return std::make_unique<torch::optim::SGD>(
        parameters, torch::optim::SGDOptions(o.lr).momentum(o.momentum).weight_decay(o.weight_decay));
  FEWREC_THROW(kInvalidArgument, "unknown optimizer `{}`; known: adam, adamw, adagrad, sgd", o.name);
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

double scheduled_lr(double base, int64_t step, const ScheduleOptions& s) {
  if (s.warmup_steps > 0 && step < s.warmup_steps)
    return base * static_cast<double>(step + 1) / static_cast<double>(s.warmup_steps);
  const int64_t t = step - s.warmup_steps;
  if (s.decay == "none") return base;
  if (s.decay == "cosine") {
    const int64_t span = std::max<int64_t>(1, s.total_steps - s.warmup_steps);
    const double progress = std::min(1.0, static_cast<double>(t) / static_cast<double>(span));
    const double cosine = 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
    return base * (s.min_ratio + (1.0 - s.min_ratio) * cosine);
  }
  if (s.decay == "step") {
    FEWREC_CHECK(s.step_size > 0, kInvalidArgument, "step decay needs step_size > 0, got {}", s.step_size);
    return base * std::pow(s.gamma, static_cast<double>(t / s.step_size));
  }
  FEWREC_THROW(kInvalidArgument, "unknown learning-rate decay `{}`; known: none, cosine, step", s.decay);
}

std::vector<std::pair<std::string, torch::Tensor>> named_state(const torch::nn::Module& module) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : module.named_parameters(true)) out.emplace_back(p.key(), p.value());
  for (const auto& b : module.named_buffers(true)) out.emplace_back(b.key(), b.value());
  return out;
}

bool EarlyStopping::update(double metric, const torch::nn::Module& module, int64_t epoch) {
  if (metric > best_metric_) {
    best_metric_ = metric;
    best_epoch_ = epoch;
    bad_rounds_ = 0;
    torch::NoGradGuard no_grad;
    best_.clear();
    for (auto& [name, t] : named_state(module)) best_.push_back(t.detach().clone());
    return true;
  }
  ++bad_rounds_;
  return false;
}

void EarlyStopping::restore(torch::nn::Module& module) const {
  if (best_.empty()) return;
  torch::NoGradGuard no_grad;
  auto state = named_state(module);
  FEWREC_ASSERT(state.size() == best_.size());
  for (size_t i = 0; i < state.size(); ++i) state[i].second.copy_(best_[i]);
}

void save_checkpoint(const std::string& path, const torch::nn::Module& module,
                     const torch::optim::Optimizer& optimizer, int64_t epochs_done) {
  torch::serialize::OutputArchive archive;
  for (auto& [name, t] : named_state(module)) archive.write("module/" + name, t, /*is_buffer=*/true);
  archive.write("epochs_done", torch::tensor(epochs_done));
  torch::serialize::OutputArchive opt;
  optimizer.save(opt);
  archive.write("optimizer", opt);
  const std::string tmp = path + ".tmp";
  try {
    archive.save_to(tmp);
  } catch (const std::exception& e) {
    FEWREC_THROW(kIo, "cannot write checkpoint `{}`: {}", tmp, e.what());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) FEWREC_THROW(kIo, "cannot rename checkpoint `{}` to `{}`: {}", tmp, path, ec.message());
}

int64_t load_checkpoint(const std::string& path, torch::nn::Module& module, torch::optim::Optimizer& optimizer) {
  if (!std::filesystem::exists(path)) FEWREC_THROW(kNotFound, "checkpoint `{}` not found", path);
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : named_state(module)) {
      torch::Tensor v;
      archive.read("module/" + name, v, /*is_buffer=*/true);
      if (!v.defined() || v.sizes() != t.sizes())
        FEWREC_THROW(kCorrupt, "checkpoint `{}`: tensor `{}` has shape {}, the model expects {}", path, name,
                     v.defined() ? fmt::format("{}", fmt::join(v.sizes(), "x")) : std::string("(missing)"),
                     fmt::format("{}", fmt::join(t.sizes(), "x")));
      t.copy_(v);
    }
    torch::Tensor epochs;
    archive.read("epochs_done", epochs);
    torch::serialize::InputArchive opt;
    archive.read("optimizer", opt);
    optimizer.load(opt);
    return epochs.item<int64_t>();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    FEWREC_THROW(kCorrupt, "checkpoint `{}` cannot be read: {}", path, std::string(e.what()).substr(0, std::string(e.what()).find('\n')));
  }
}

EpochReporter::EpochReporter(core::Monitor& monitor, std::string task, int64_t epochs)
    : monitor_(monitor), task_(std::move(task)), epochs_(epochs), start_(std::chrono::steady_clock::now()),
      last_(start_) {}

void EpochReporter::epoch_done(int64_t epoch, double loss, int64_t examples, const std::string& extra) {
  const auto now = std::chrono::steady_clock::now();
  const double dt = std::chrono::duration<double>(now - last_).count();
  const double total = std::chrono::duration<double>(now - start_).count();
  last_ = now;
  const double eta = epoch > 0 ? total / static_cast<double>(epoch) * static_cast<double>(epochs_ - epoch) : 0.0;
  monitor_.progress(task_, epoch, epochs_);
  monitor_.info(fmt::format("{} epoch {}/{}: loss {:.4f}, {:.0f} ex/s, {:.2f} s{}{}", task_, epoch, epochs_, loss,
                            dt > 0 ? static_cast<double>(examples) / dt : 0.0, dt,
                            epoch < epochs_ ? fmt::format(", ETA {:.0f} s", eta) : std::string(),
                            extra.empty() ? std::string() : ", " + extra));
  monitor_.metric(task_ + "/loss", loss, epoch);
}

void save_params(core::ArtifactWriter& writer, const std::string& prefix, const torch::nn::Module& module) {
  for (auto& [name, t] : named_state(module)) {
    auto c = t.detach().contiguous().to(torch::kFloat);
    writer.put_array<float>(prefix + "param/" + name,
                            std::span<const float>(c.data_ptr<float>(), static_cast<size_t>(c.numel())));
  }
}

void load_params(const core::ArtifactReader& reader, const std::string& prefix, torch::nn::Module& module,
                 const std::string& what) {
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : named_state(module)) {
    const auto values = reader.get_array<float>(prefix + "param/" + name);
    if (static_cast<int64_t>(values.size()) != t.numel())
      FEWREC_THROW(kCorrupt, "artifact {}: {}: parameter `{}` has {} values, the model options give {}",
                   reader.origin(), what, name, values.size(), t.numel());
    for (float v : values)
      if (!std::isfinite(v))
        FEWREC_THROW(kCorrupt, "artifact {}: {}: parameter `{}` holds a non-finite value", reader.origin(), what, name);
    t.copy_(torch::from_blob(const_cast<float*>(values.data()), t.sizes(), torch::kFloat));
  }
}

}  // namespace fewrec::train
