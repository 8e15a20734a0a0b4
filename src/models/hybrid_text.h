// Pretrained item text vectors for the hybrid model (internal to the models
// layer): the options that choose them and the source that produces them,
// either a text encoder run in-process on the items' texts
// (`text_encoder`, `text_options`, `text_fields`) or a vector file written by
// `fewrec encode` (`item_vectors`).
//
// The hybrid adds P t_i to item i's representation (t_i its fixed text
// vector, P a learned [factors x dim] projection): see hybrid.cpp.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fewrec/core/monitor.h"
#include "fewrec/data/dataset.h"
#include "fewrec/text/encoder.h"
#include "hybrid_features.h"

namespace fewrec::models::hybrid {

// Encoder options inside a model spec: key=value pairs separated by `;`
// (commas separate the model's own options); `,` is accepted too. `what`
// names the option in errors. A key given twice, a missing `=` or an empty key
// is kInvalidArgument.
std::map<std::string, std::string> parse_encoder_options(std::string_view text, std::string_view what);
// Canonical text: "key=value;key=value" sorted by key ("" when empty). A
// value holding `,` or `;` cannot be written (kInvalidArgument).
std::string encoder_options_to_string(const std::map<std::string, std::string>& options, std::string_view what);

struct TextSourceOptions {
  std::string encoder = "none";                        // registered text encoder, or "none"
  std::map<std::string, std::string> encoder_options;  // validated by the encoder when it is built
  ColumnSelection fields;                              // all: item_texts' default (text, then tag columns)
  std::string item_vectors;                            // vector file of `fewrec encode` (instead of an encoder)
  bool enabled() const { return encoder != "none" || !item_vectors.empty(); }
};

// Checks what can be checked without files or data (at model creation):
// a known encoder with known option keys, not both an encoder and a vector
// file, no encoder options or fields without an encoder. kInvalidArgument
// naming `model` and the option.
void check_text_options(const TextSourceOptions& options, std::string_view model);

// Produces the text vectors of catalogue items. The encoder (or the vector
// file) is opened on first use, so a loaded model needs it only when items
// are added.
class ItemTextSource {
 public:
  ItemTextSource(TextSourceOptions options, std::string model);

  // Vectors of the items [first, catalogue.items.size()): [n x dim] rows.
  // Encoder: the texts of `fields` (unknown or numeric fields are
  // kInvalidArgument listing the item columns), encoded in batches with
  // progress on `monitor`. Vector file: read again on each call (it may have
  // been re-encoded for a grown catalogue); items it lacks get zero rows,
  // counted in *missing. A missing or bad file is an error naming the option.
  text::Matrix vectors(const data::Catalogue& catalogue, int32_t first, core::Monitor& monitor,
                       int64_t* missing = nullptr);

  // Identity of the vectors (the encoder's identity(), or the one the vector
  // file records); empty before the first vectors() call.
  const std::string& identity() const { return identity_; }
  // {source, identity, dim, token coverage} after vectors().
  nlohmann::json describe() const;

 private:
  void check_fields(const data::FeatureTable& table) const;

  TextSourceOptions o_;
  std::string model_;
  std::unique_ptr<text::TextEncoder> encoder_;
  std::string identity_;
  int64_t dim_ = 0;
};

}  // namespace fewrec::models::hybrid
