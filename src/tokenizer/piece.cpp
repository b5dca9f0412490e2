#include "tokenizer/piece.h"

#include <algorithm>

#include "core/error.h"

namespace mmfp4 {

SplitBehavior parse_split_behavior(const std::string& s, const std::string& what) {
  if (s == "Removed") return SplitBehavior::Removed;
  if (s == "Isolated") return SplitBehavior::Isolated;
  if (s == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (s == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (s == "Contiguous") return SplitBehavior::Contiguous;
  fail(what, ": unknown split behavior '", s, "'");
}

Piece sub_piece(const Piece& p, size_t b, size_t e) {
  Piece c;
  c.text = p.text.substr(b, e - b);
  // A cut inside (or right after) the prepended prefix still starts at the original offset 0: Hugging Face
  // aligns prepended characters with the first original character.
  c.at_origin = p.at_origin && b <= p.inserted;
  c.inserted = b < p.inserted ? uint32_t(std::min<size_t>(p.inserted - b, e - b)) : 0;
  c.raw_bytes = p.raw_bytes;
  return c;
}

void split_piece(const Piece& p, const std::vector<Span>& matches, SplitBehavior behavior, bool invert,
                 std::vector<Piece>& out) {
  struct Part {
    size_t b, e;
    bool match;
  };
  // The whole text as alternating parts, as Hugging Face's Pattern::find_matches: gaps only when non-empty,
  // matches always (an empty match still separates the gaps around it).
  std::vector<Part> parts;
  parts.reserve(matches.size() * 2 + 1);
  size_t prev = 0;
  for (const Span& m : matches) {
    if (prev != m.begin) parts.push_back({prev, m.begin, invert});
    parts.push_back({m.begin, m.end, !invert});
    prev = m.end;
  }
  if (prev != p.text.size()) parts.push_back({prev, p.text.size(), invert});

  // (begin, end, keep) after applying the behavior.
  struct Cut {
    size_t b, e;
    bool keep;
  };
  std::vector<Cut> cuts;
  cuts.reserve(parts.size());
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::Isolated:
      for (const Part& x : parts) cuts.push_back({x.b, x.e, true});
      break;
    case SplitBehavior::Removed:
      for (const Part& x : parts) cuts.push_back({x.b, x.e, !x.match});
      break;
    case SplitBehavior::Contiguous:
      for (const Part& x : parts) {
        if (x.match == previous_match && !cuts.empty()) cuts.back().e = x.e;
        else cuts.push_back({x.b, x.e, true});
        previous_match = x.match;
      }
      break;
    case SplitBehavior::MergedWithPrevious:
      for (const Part& x : parts) {
        if (x.match && !previous_match && !cuts.empty()) cuts.back().e = x.e;
        else cuts.push_back({x.b, x.e, true});
        previous_match = x.match;
      }
      break;
    case SplitBehavior::MergedWithNext:
      for (size_t k = parts.size(); k-- > 0;) {
        const Part& x = parts[k];
        if (x.match && !previous_match && !cuts.empty()) cuts.back().b = x.b;
        else cuts.push_back({x.b, x.e, true});
        previous_match = x.match;
      }
      std::reverse(cuts.begin(), cuts.end());
      break;
  }
  for (const Cut& c : cuts)
    if (c.keep && c.e > c.b) out.push_back(sub_piece(p, c.b, c.e));
}

}  // namespace mmfp4
