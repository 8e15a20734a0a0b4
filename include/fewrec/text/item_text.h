// Item texts for encoders and the vector files `fewrec encode` writes.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fewrec/data/dataset.h"
#include "fewrec/text/encoder.h"

namespace fewrec::text {

// One text per item from the catalogue's feature columns `fields` (text
// columns as they are, tag columns joined by ", ", categorical values), the
// parts joined by ". ". Empty `fields`: every text column, then every tag
// column. An unknown field is an error listing the columns.
std::vector<std::string> item_texts(const data::Catalogue& catalogue, const std::vector<std::string>& fields);

// Item vectors keyed by external item id (artifact kind "item_vectors").
struct ItemVectors {
  std::vector<std::string> ids;
  Matrix vectors;  // [ids.size() x dim]
  std::string encoder;  // the encoder's identity
  nlohmann::json meta = nlohmann::json::object();  // fields, coverage, source
};
void save_item_vectors(const ItemVectors& v, const std::filesystem::path& path);
ItemVectors load_item_vectors(const std::filesystem::path& path);

// Rows of `v` in the order of `items` (external ids); items without a
// vector get zeros and are counted in *missing.
Matrix align_item_vectors(const ItemVectors& v, const data::IdMap& items, int64_t* missing = nullptr);

}  // namespace fewrec::text
