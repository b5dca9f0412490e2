// Good safetensors files and folders: the writer's output read back, gaps and empty tensors, sharded folders, and
// every shared checkpoint opening cleanly.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/mapped_file.h"
#include "format/checkpoint.h"
#include "format/safetensors.h"
#include "test_util.h"

using namespace mmfp4;

namespace {

TEST(Safetensors, WriterOutputReadsBack) {
  test::TempDir dir;
  const std::vector<uint16_t> h = {1, 2, 3};
  const std::vector<float> f = {1.5f, -2.0f, 3.25f, 4.0f};
  const int32_t one = 7;
  const std::string path = dir / "a.safetensors";
  SafetensorsWriter::write_file(path,
                                {{"half", DType::F16, {3}, h.data()},
                                 {"empty", DType::F32, {0, 5}, nullptr},
                                 {"mat", DType::F32, {2, 2}, f.data()},
                                 {"gs", DType::I32, {1}, &one}},
                                {{"format", "pt"}});
  EXPECT_FALSE(file_exists(path + ".tmp"));
  auto st = SafetensorsFile::open(path);
  ASSERT_EQ(st->tensors().size(), 4u);
  EXPECT_EQ(st->metadata()["format"].as_string(), "pt");
  const TensorInfo* mat = st->find("mat");
  ASSERT_TRUE(mat);
  EXPECT_EQ(mat->shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(mat->numel(), 4);
  EXPECT_EQ(std::memcmp(mat->data, f.data(), 16), 0);
  EXPECT_EQ(std::memcmp(st->find("half")->data, h.data(), 6), 0);
  EXPECT_EQ(st->find("empty")->nbytes, 0u);
  EXPECT_EQ(mat->describe(), "'mat' (F32 [2, 2]) in " + path);
  // Data starts 8-byte aligned, and wider types come first so that every tensor is aligned to its element size.
  MappedFile m(path);
  uint64_t n = 0;
  std::memcpy(&n, m.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u);
  for (const TensorInfo& t : st->tensors())
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % dtype_size(t.dtype), 0u) << t.name;
  // Tensors come in data-offset order and the ranges are contiguous (other readers reject gaps in what we write).
  for (size_t i = 1; i < st->tensors().size(); ++i)
    EXPECT_EQ(st->tensors()[i - 1].data + st->tensors()[i - 1].nbytes, st->tensors()[i].data);
}

TEST(Safetensors, StreamingWriterRemovesItsTemporaryFileWhenAbandoned) {
  test::TempDir dir;
  const std::string path = dir / "b.safetensors";
  {
    SafetensorsWriter w(path);
    w.declare("x", DType::F32, {4});
    w.begin();
    const float x[2] = {1, 2};
    w.write(x, 8);  // half of it, then an error elsewhere unwinds
    EXPECT_TRUE(file_exists(path + ".tmp"));
  }
  EXPECT_FALSE(file_exists(path + ".tmp"));
  EXPECT_FALSE(file_exists(path));
  SafetensorsWriter w(path);
  w.declare("x", DType::F32, {4});
  EXPECT_THROW(w.declare("x", DType::F32, {4}), Error);
  EXPECT_THROW(w.declare("__metadata__", DType::F32, {4}), Error);
}

TEST(Safetensors, GapsAndEmptyTensorsAreAccepted) {
  test::TempDir dir;
  const std::string header =
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]},"
      "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[5,5]},"
      "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[8,10]},"
      "\"__metadata__\":{}}";
  test::write_bytes(dir / "g.safetensors", test::safetensors_bytes(header, 12));
  auto st = SafetensorsFile::open(dir / "g.safetensors");
  ASSERT_EQ(st->tensors().size(), 3u);
  EXPECT_EQ(st->tensors()[0].name, "a");  // data-offset order
  EXPECT_EQ(st->tensors()[2].name, "b");
  EXPECT_EQ(st->find("b")->data[0], 8);
}

TEST(Checkpoint, ShardedFolderThroughTheIndex) {
  test::TempDir dir;
  const float a[2] = {1, 2}, b[3] = {3, 4, 5};
  SafetensorsWriter::write_file(dir / "model-00001-of-00002.safetensors", {{"a", DType::F32, {2}, a}});
  SafetensorsWriter::write_file(dir / "model-00002-of-00002.safetensors",
                                {{"b", DType::F32, {3}, b}, {"c", DType::F32, {1}, a}});
  test::write_bytes(dir / "model.safetensors.index.json",
                    "{\"metadata\": {\"format\": \"mmfp4\"}, \"weight_map\": {\"b\": "
                    "\"model-00002-of-00002.safetensors\", \"a\": \"model-00001-of-00002.safetensors\"}}");
  // A stray file the index does not name is not read.
  test::write_bytes(dir / "stray.safetensors", "garbage");
  auto ck = Checkpoint::open(dir.path());
  ASSERT_EQ(ck->files().size(), 2u);
  EXPECT_EQ(ck->index_metadata()["format"].as_string(), "mmfp4");
  ASSERT_EQ(ck->tensors().size(), 3u);  // "c" is in a listed shard, so it is found too
  EXPECT_EQ(ck->tensors()[0]->name, "a");
  EXPECT_EQ(ck->get("b").numel(), 3);
  EXPECT_EQ(*ck->get("a").file, dir / "model-00001-of-00002.safetensors");
  EXPECT_EQ(ck->find("zzz"), nullptr);
  try {
    ck->get("zzz");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), dir.path() + ": tensor 'zzz' is missing");
  }
}

TEST(Checkpoint, WithoutIndexReadsEverySafetensorsFile) {
  test::TempDir dir;
  const float a[2] = {1, 2};
  SafetensorsWriter::write_file(dir / "part-b.safetensors", {{"b", DType::F32, {2}, a}});
  SafetensorsWriter::write_file(dir / "part-a.safetensors", {{"a", DType::F32, {2}, a}});
  auto ck = Checkpoint::open(dir.path());
  ASSERT_EQ(ck->files().size(), 2u);
  EXPECT_EQ(ck->files()[0]->path(), dir / "part-a.safetensors");
  EXPECT_TRUE(ck->index_metadata().is_null());
  // model.safetensors, when present, is the only file read.
  SafetensorsWriter::write_file(dir / "model.safetensors", {{"m", DType::F32, {2}, a}});
  ck = Checkpoint::open(dir.path());
  ASSERT_EQ(ck->tensors().size(), 1u);
  EXPECT_EQ(ck->total_bytes(), std::filesystem::file_size(dir / "model.safetensors"));
}

TEST(Checkpoint, EverySharedCheckpointOpens) {
  const char* dirs[] = {"fixtures/parity/llama3",       "fixtures/parity/qwen3-moe",
                        "fixtures/parity/deepseek-v3",  "fixtures/parity/glm4-moe-lite",
                        "fixtures/parity-mmfp4/llama3", "fixtures/parity-mmfp4/qwen3-moe",
                        "fixtures/parity-mmfp4/deepseek-v3", "fixtures/parity-mmfp4/glm4-moe-lite",
                        "models/tiny-qwen3",            "models/tiny-qwen3-mmfp4",
                        "models/tiny-glm4-moe-lite",    "models/tiny-glm4-moe-lite-mmfp4-h64"};
  for (const char* d : dirs) {
    auto ck = Checkpoint::open(test::shared_dir() + "/" + d);
    EXPECT_GT(ck->tensors().size(), 10u) << d;
  }
  auto ck = Checkpoint::open(test::shared_dir() + "/fixtures/parity-mmfp4/llama3");
  EXPECT_EQ(ck->tensors().size(), 14u * 3 + 7);  // 14 quantized (codes, scales, group size) + embeddings, lm_head, 5 norms
  EXPECT_EQ(ck->get("model.layers.0.mlp.down_proj.weight").shape, (std::vector<int64_t>{256, 64}));
  EXPECT_EQ(ck->get("model.layers.0.mlp.down_proj.weight.scales").dtype, DType::F16);
}

}  // namespace
